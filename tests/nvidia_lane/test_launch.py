"""LaunchPlan -> CUDA launch arguments, without a GPU: dispatchThreads regions, argument words, scalar bytes,
dynamic shared memory, and the limits checked before a launch."""

import itertools
import struct

import pytest
import torch

from mpskernels import registry
from mpskernels.cuda import cuda_source, plan_launch, regions
from mpskernels.cuda.translate import CudaEntry
from mpskernels.kernels import FAMILIES
from mpskernels.kernels.spec import LaunchPlan, Scalar, TensorMeta


def covered(rs, threads, group):
    """Every grid thread position exactly once, with the threadgroup size each region launches with."""
    seen = {}
    for r in rs:
        for b in itertools.product(*(range(n) for n in r.blocks)):
            for t in itertools.product(*(range(n) for n in r.block)):
                pos = tuple((b[d] + r.offset[d]) * group[d] + t[d] for d in range(3))
                assert pos not in seen
                seen[pos] = r.block
    assert len(seen) == threads[0] * threads[1] * threads[2]
    assert all(p[d] < threads[d] for p in seen for d in range(3))
    return seen


@pytest.mark.parametrize("threads, group", [((1024, 1, 1), (256, 1, 1)), ((10, 1, 1), (256, 1, 1)),
                                            ((1056, 1, 1), (256, 1, 1)), ((37, 5, 3), (8, 2, 2)),
                                            ((64, 3, 1), (32, 4, 1))])
def test_regions_cover_the_grid_once_with_reduced_edge_threadgroups(threads, group):
    rs = regions(threads, group)
    assert len(rs) <= 8
    sizes = covered(rs, threads, group)
    for pos, block in sizes.items():  # an edge threadgroup is as large as what is left of the grid
        for d in range(3):
            tg = pos[d] // group[d]
            assert block[d] == min(group[d], threads[d] - tg * group[d])


def test_exact_grids_launch_once():
    assert regions((4096, 2, 1), (128, 1, 1)) == (regions((4096, 2, 1), (128, 1, 1))[0],)


ENTRY = CudaEntry("k", "mtl_entry_3", buffer_slots=6, threadgroup_slots=2, max_threads=256, inline_slots=(2, 3, 4, 5))


def test_words_hold_pointers_and_inline_scalar_bytes():
    plan = LaunchPlan("k", ("x", None, Scalar(1.0, "float"), Scalar(7, "uint"), Scalar(True, "bool"),
                            Scalar(-2, "int")), threads=(300, 1, 1), group_size=(128, 1, 1),
                      threadgroup_memory={1: 100})
    launch = plan_launch(ENTRY, plan, {"x": 0xDEAD0000})
    assert launch.words == (0xDEAD0000, 0, struct.unpack("<I", struct.pack("<f", 1.0))[0], 7, 1,
                            struct.unpack("<I", struct.pack("<i", -2))[0])
    assert launch.inline_mask == 0b111100
    assert launch.threadgroup_offsets == (0, 0) and launch.shared_bytes == 112  # slot 0 empty, 100 -> 112
    words, small = launch.arguments(launch.regions[1])
    assert small == (0, 0, 0b111100, 300, 1, 1, 128, 1, 1, 2, 0, 0)  # offsets, mask, grid, group, region offset


def test_half_scalars_are_packed_as_msl_half():
    launch = plan_launch(ENTRY, LaunchPlan("k", (None, None, Scalar(1.0, "half")), (1, 1, 1), (1, 1, 1)), {})
    assert launch.words[2] == 0x3C00


@pytest.mark.parametrize("plan, message", [
    (LaunchPlan("k", ("x",), (512, 1, 1), (512, 1, 1)), "more than the kernel allows"),
    (LaunchPlan("k", ("x",), (1, 70000, 1), (1, 1, 1)), "more than CUDA's 65535"),
    (LaunchPlan("k", ("x", Scalar(1.0, "float")), (1, 1, 1), (1, 1, 1)), "does not declare it"),
    (LaunchPlan("k", ("y",), (1, 1, 1), (1, 1, 1)), "names 'y'"),
    (LaunchPlan("k", ("x",) * 7, (1, 1, 1), (1, 1, 1)), "7 buffers"),
])
def test_launches_the_gpu_would_reject_are_refused_first(plan, message):
    with pytest.raises((ValueError, KeyError), match=message):
        plan_launch(ENTRY, plan, {"x": 16})


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_example_maps_to_a_launch(family):
    """Each example's plan binds through the translated entry: names resolve, scalars go to `constant T&` slots."""
    runner = registry.RUNNERS[family.name]
    for dtype in family.dtypes:
        for args in family.examples(dtype):
            inputs = dict(zip(runner.names, runner.fill_defaults(tuple(args), {})))
            if registry.unsupported_reason(family, inputs):
                continue
            metas = {k: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            plan = family.plan(**metas)
            entries = cuda_source(family.source, tuple(sorted(plan.constants.items()))).entries
            names = set(inputs) | set(family.outputs) | {s.name for s in plan.scratch}
            for dispatch in plan.dispatches:  # every dispatch of a multi-pass plan, scratch buffers included
                entry = entries[dispatch.kernel]
                launch = plan_launch(entry, dispatch, {n: 4096 * (i + 1) for i, n in enumerate(sorted(names))})
                assert len(launch.words) == entry.buffer_slots
                threads = dispatch.threads
                if 0 not in threads and threads[0] * threads[1] * threads[2] <= 65536:
                    covered(launch.regions, threads, dispatch.group_size)
