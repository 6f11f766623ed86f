"""Every threadgroup a host plan launches fits what its kernel declares.

On Apple GPUs a pipeline's maxTotalThreadsPerThreadgroup depends on the kernel's register and threadgroup-memory use
(it can be below the device's 1024): a dispatch over it fails at encode time (csrc/mps/bridge.mm checks, and the op
falls back to PyTorch with a warning). `[[max_total_threads_per_threadgroup(N)]]` makes the compiler fit the kernel
to N threads, so a plan may launch up to N. Without the attribute nothing is promised; we take the 256 threads that
portable APIs over Metal assume for any kernel (WebGPU's default limit) and no more. Shapes reach each family's
largest threadgroups (rows of 32000 and 100000 take softmax's wide and looped variants; long norm rows take 1024
threads); the plans are computed from shapes alone, so the shapes can be model-sized."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from mpskernels._paths import metal_dir
from mpskernels.kernels import FAMILIES
from mpskernels.kernels.spec import TensorMeta
from mpskernels.msl import read_file

UNDECLARED_LIMIT = 256
FAMILY = {f.name: f for f in FAMILIES}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def declared_limits(source: str) -> dict[str, int | None]:
    """host name -> max_total_threads_per_threadgroup of each kernel of metal/<source> (None where undeclared)."""
    unit = read_file(metal_dir() / source, include_dirs=[metal_dir()])
    return {entry.host_name: entry.max_threads for entry in unit.program.entries}


def row_cases(dtype: torch.dtype):
    """(family, plan arguments) over row lengths from one chunk to past every register-held variant."""
    for cols in (8, 128, 2048, 4096, 8192, 16384, 32000, 65536, 100000):
        x = TensorMeta((4, cols), dtype)
        w = TensorMeta((cols,), dtype)
        yield "softmax", dict(x=x, mask=None, scale=1.0)
        yield "log_softmax", dict(x=x, mask=None, scale=1.0)
        yield "rms_norm", dict(x=x, weight=w, eps=1e-6)
        yield "add_rms_norm", dict(x=x, residual=x, weight=w, eps=1e-6)
        yield "layer_norm", dict(x=x, weight=w, bias=w, eps=1e-5)
        yield "add_layer_norm", dict(x=x, residual=x, weight=w, bias=w, eps=1e-5)
        yield "silu", dict(x=x)
        yield "swiglu_split", dict(x=TensorMeta((4, 2 * cols), dtype))
        yield "bias_act", dict(x=x, bias=w, act="gelu")
    for shape in ((8, 512, 64, 64), (1, 320, 128, 128), (2, 64, 8, 8), (3, 32)):
        c = TensorMeta((shape[1],), dtype)
        yield "group_norm", dict(x=TensorMeta(shape, dtype), groups=32, weight=c, bias=c, eps=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_every_threadgroup_fits_its_kernels_declared_limit(dtype):
    checked = set()
    for name, args in row_cases(dtype):
        family = FAMILY[name]
        table = declared_limits(family.source)
        for d in family.plan(**args).dispatches:
            threads = math.prod(d.group_size)
            limit = table[d.kernel]
            if limit is None:
                assert threads <= UNDECLARED_LIMIT, (
                    f"{d.kernel} launches {threads} threads a threadgroup ({name} {args['x'].shape}) "
                    f"without max_total_threads_per_threadgroup: Apple GPUs promise no more than {UNDECLARED_LIMIT}")
            else:
                assert threads <= limit, f"{d.kernel}: {threads} threads a threadgroup over its declared {limit}"
            checked.add((d.kernel.rsplit("_", 1)[0], threads > UNDECLARED_LIMIT))
    # the shapes reach the large threadgroups this test is about
    assert {("softmax_wide", True), ("softmax_looped", True), ("rms_norm", True), ("layer_norm", True),
            ("group_norm", True)} <= checked


def test_declared_limits_are_read_from_the_sources():
    assert declared_limits("group_norm.metal")["group_norm_float16"] == 512
    assert declared_limits("softmax.metal")["softmax_wide_float32"] == 1024
    assert declared_limits("attention.metal")["attention_decode_split_d128_float16"] == 128
    assert "silu_float32" in declared_limits("activations.metal")
