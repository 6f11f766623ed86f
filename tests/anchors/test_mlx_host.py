"""MLX's host logic as the anchor ops carry it (no kernel runs here), and the wheel the kernels come from: a
machine that cannot get MLX's headers fails here, it does not skip."""

import pytest
import torch

from mpskernels.anchors import REGISTRY, for_family, mlx_include_dir
from mpskernels.anchors.mlx import attention, binary, gemv, quantized, softmax, unary

from .mlx_check import randn


def test_the_mlx_metal_wheel_provides_every_header_the_anchor_ops_include():
    root = mlx_include_dir() / "mlx" / "backend" / "metal" / "kernels"
    for header in ("softmax.h", "logsumexp.h", "unary.h", "unary_ops.h", "binary.h", "binary_ops.h",
                   "sdpa_vector.h", "steel/attn/kernels/steel_attention.h", "steel/attn/params.h", "quantized.h",
                   "gemv.h", "utils.h", "bf16_math.h"):
        assert (root / header).is_file(), header


def test_every_family_named_has_its_mlx_anchor():
    for family in ("softmax", "log_softmax", "silu", "gelu", "swiglu", "bias_act", "attention",
                   "quantized_linear", "gemv"):
        assert [op for op in for_family(family) if op.anchor == "mlx"], family
    assert all(op.doc for op in REGISTRY.values())


@pytest.mark.parametrize("axis, variant, group", [(1, "block", 32), (128, "block", 32), (129, "block", 64),
                                                   (4096, "block", 1024), (4097, "looped", 1024)])
def test_softmax_geometry(axis, variant, group):
    assert softmax.row_geometry(axis, 3) == (variant, 3 * group, group)


def test_softmax_kernel_names():
    assert softmax.softmax_kernel(torch.float16, 100, precise=False) == "block_softmax_float16"
    assert softmax.softmax_kernel(torch.float16, 5000, precise=True) == "looped_softmax_precise_float16"
    assert softmax.softmax_kernel(torch.float32, 100, precise=True) == "block_softmax_float32"


def test_work_per_thread_and_contiguous_geometry():
    assert unary.work_per_thread(torch.float32, 65535) == 1
    assert unary.work_per_thread(torch.float32, 65536) == 2
    assert unary.work_per_thread(torch.float16, 65536) == 4
    assert unary.contiguous_geometry("t", torch.float16, 65537) == (4, 16385, 1024)
    assert unary.contiguous_geometry("t", torch.float32, 100) == (1, 100, 100)
    with pytest.raises(ValueError, match="v2"):
        unary.contiguous_geometry("t", torch.float32, 2**32)


def test_binary_op_types():
    x, one = randn(4, 5), randn(1)
    assert binary.op_type(x, x) == "vv"
    assert binary.op_type(*torch.broadcast_tensors(one, x)) == "sv"
    assert binary.op_type(*torch.broadcast_tensors(x, one)) == "vs"
    assert binary.op_type(*torch.broadcast_tensors(x, randn(5))) == "g"


def test_collapse_contiguous_dims():
    # A Linear's bias over (B, L, C): batch and sequence merge, the channel stays.
    assert binary.collapse_contiguous_dims([2, 3, 5], [[15, 5, 1], [0, 0, 1], [15, 5, 1]]) == \
        ([6, 5], [[5, 1], [0, 1], [5, 1]])
    assert binary.collapse_contiguous_dims([2, 1, 5], [[5, 5, 1], [5, 5, 1]]) == ([10], [[1], [1]])
    assert binary.collapse_contiguous_dims([1, 1], [[1, 1]]) == ([1], [[0]])


def test_block_dims():
    assert binary.block_dims(1, 1, 1) == (1, 1, 1)
    assert binary.block_dims(5000, 3, 1) == (512, 2, 1)
    assert binary.block_dims(1 << 20, 1 << 20, 1 << 20) == (16, 8, 8)
    assert binary.block_dims(7, 1, 1) == (4, 1, 1)


def test_two_pass_blocks_and_route():
    assert attention.two_pass_blocks("applegpu_g16s", 512, 8) == 64
    assert attention.two_pass_blocks("applegpu_g16s", 4000, 8) == 128
    assert attention.two_pass_blocks("applegpu_g16s", 100000, 8) == 1024
    assert attention.two_pass_blocks("applegpu_g15d", 20000, 1) == 256
    assert attention.two_pass_blocks("applegpu_g15d", 20000, 8) == 512
    assert attention.two_pass_blocks("applegpu_g14g", 20000, 2) == 32
    q, k = torch.empty(1, 8, 1, 64), torch.empty(1, 1, 1024, 64)
    assert attention.decode_route(q, k, "applegpu_g16s") == "sdpa_vector_2pass"
    assert attention.decode_route(q, k, "applegpu_g16g") == "sdpa_vector"
    assert attention.decode_route(q, torch.empty(1, 1, 4096, 64), "applegpu_g16g") == "sdpa_vector_2pass"


def test_attn_params_layout():
    q = randn(2, 4, 40, 64)
    k = randn(2, 2, 50, 64)
    a = attention.attention_inputs("t", q, k, k, None, None, True)
    raw = attention.attn_params(a, 32, 32, (1, 2, 3))
    assert len(raw) == 152  # 14 ints and a float, then 4 x int64[3] at offset 56
    import struct
    fields = struct.unpack("<6if7i12q", raw)
    assert fields[:6] == (2, 4, 64, 40, 50, 2) and abs(fields[6] - 0.125) < 1e-7
    assert fields[7:14] == (2, 2, 1, 1, 8, 18, 10)
    assert fields[14:17] == q.stride()[:3] and fields[-3:] == (1, 2, 3)


def test_gemv_tiles():
    assert gemv.gemv_tile(4096, 4096) == (gemv.Tile(8, 1, 1, 32, 4, 4), 32)
    assert gemv.gemv_tile(64, 100) == (gemv.Tile(1, 1, 8, 4, 4, 4), 32)
    assert gemv.gemv_tile(1024, 3) == (gemv.Tile(1, 8, 1, 32, 1, 4), 1)
    assert gemv.gemv_t_tile(8192, 4096) == (gemv.Tile(1, 16, 4, 8, 4, 4), 512)
    assert gemv.gemv_t_tile(100, 600) == (gemv.Tile(1, 4, 8, 4, 4, 4), 64)
    assert gemv.gemv_t_tile(100, 3) == (gemv.Tile(1, 2, 8, 4, 4, 1), 8)


def test_quantized_routes_and_packing():
    assert quantized.fast_k_alignment(4) == 512
    assert quantized.arch_generation("applegpu_g16s") == 16
    words = quantized.pack(torch.arange(16).reshape(2, 8) % 16)
    assert words.dtype == torch.uint32
    assert words.view(torch.int32).tolist() == [[0x76543210], [0xFEDCBA98 - 2**32]]
    x = randn(1, 128)
    w = torch.zeros(8, 16, dtype=torch.int32)
    s = randn(8, 2)
    with pytest.raises(ValueError, match="qmv_quad"):
        quantized.prepare_qmv("emulator", x, w, s, s)


class _FakeLibrary:
    def __init__(self, with_prepare):
        self.calls = []
        if with_prepare:
            self.prepare = lambda kernel, *args, **kw: ("prepared", kernel, args, kw)

    def dispatch(self, kernel, *args, **kw):
        self.calls.append((kernel, args, kw))


@pytest.mark.parametrize("backend, with_prepare", [("emulator", True), ("cuda", True), ("cuda", False)])
def test_launcher_prepares_on_the_lane_and_dispatches_elsewhere(monkeypatch, backend, with_prepare):
    from mpskernels.anchors import launch

    lib = _FakeLibrary(with_prepare)
    monkeypatch.setattr(launch, "load", lambda name, b: lib)
    result = launch.launcher(backend, "mlx_x", "k", 1, 2, threads=(64,), group_size=(32,), constants={"c": True})
    options = dict(threads=(64,), group_size=(32,), constants={"c": True}, threadgroup_memory={})
    if backend == "cuda" and with_prepare:
        assert result == ("prepared", "k", (1, 2), options) and lib.calls == []
    else:
        assert lib.calls == []  # nothing runs until the launch is called, and then every time
        result()
        result()
        assert lib.calls == [("k", (1, 2), options)] * 2
