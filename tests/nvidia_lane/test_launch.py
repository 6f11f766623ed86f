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
                if 0 in threads:
                    continue
                if entry.independent_threads:  # whole blocks over the grid; the entry returns past its edge
                    assert launch.regions == regions(threads, dispatch.group_size, one_launch=True)
                elif threads[0] * threads[1] * threads[2] <= 65536:
                    covered(launch.regions, threads, dispatch.group_size)


@pytest.mark.parametrize("threads, group", [((1376, 8, 1), (256, 1, 1)), ((37, 5, 3), (8, 2, 2)),
                                            ((8, 40, 8), (8, 32, 1)), ((1024, 1, 1), (256, 1, 1)),
                                            ((8, 10, 4096), (8, 32, 1))])
def test_threads_that_never_meet_take_one_launch_of_whole_blocks(threads, group):
    (r,) = regions(threads, group, one_launch=True)
    assert r.offset == (0, 0, 0)
    for b, size, g, n in zip(r.blocks, r.block, group, threads):
        if n < g:  # a lone edge threadgroup keeps Metal's reduced size: no padding
            assert (b, size) == (1, n)
        else:  # whole blocks, padding short of one block
            assert size == g and b * g >= n > (b - 1) * g
    assert regions((0, 4, 1), (256, 1, 1), one_launch=True) == ()  # an empty grid launches nothing


def entries(source):
    return cuda_source(source, ()).entries.values()


@pytest.mark.parametrize("source", ["activations.metal", "epilogue.metal", "rope.metal", "kv_cache.metal"])
def test_element_wise_kernels_are_independent_threads(source):
    assert all(e.independent_threads for e in entries(source))
    text = cuda_source(source, ()).text  # and each entry returns past the grid's edge before calling its kernel
    assert text.count("if (!::mtlcuda::inside_grid(g)) return;") == len(entries(source))


@pytest.mark.parametrize("source", ["rms_norm.metal", "softmax.metal", "attention.metal", "quantized.metal",
                                    "group_norm.metal", "layer_norm.metal"])
def test_kernels_with_barriers_or_simd_collectives_keep_their_regions(source):
    assert not any(e.independent_threads for e in entries(source))
    assert "inside_grid" not in cuda_source(source, ()).text
    entry = next(iter(entries(source)))
    ragged = LaunchPlan(entry.host_name, (), threads=(300, 1, 1), group_size=(32, 1, 1))
    assert len(plan_launch(entry, ragged, {}).regions) == 2


def test_position_builtins_alone_do_not_make_threads_independent():
    """Only the whole unit's lack of threadgroup memory, barriers and SIMD functions does: positions.metal qualifies;
    the same kernel beside a simd_sum does not, nor one taking a SIMD-lane builtin."""
    from conftest import EMULATOR_MSL_DIR
    from mpskernels.msl import Specialization, read_file, read_source
    from mpskernels.cuda import to_cuda

    def entry(u, name):
        return to_cuda(u.text, u.program, Specialization()).entries[name]

    assert entry(read_file(EMULATOR_MSL_DIR / "positions.metal"), "positions_3d").independent_threads
    plain = "kernel void k(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]{extra}) {{ {body} }}"
    cases = {"": ("o[i] = 1;", True), ", uint lane [[thread_index_in_simdgroup]]": ("o[i] = lane;", False),
             " ": ("o[i] = simd_sum(1.0f);", False)}
    for extra, (body, independent) in cases.items():
        u = read_source("#include <metal_stdlib>\nusing namespace metal;\n" + plain.format(extra=extra, body=body),
                        "k.metal")
        assert entry(u, "k").independent_threads is independent, (extra, body)
