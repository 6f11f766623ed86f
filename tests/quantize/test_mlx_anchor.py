"""MLX's affine_qmm_t as the anchor of quantized_linear's prefill kernel (anchors/mlx/quantized.py): MLX's routes,
its kernel on the emulator, and the layouts agreeing: MLX's packed words, scales and biases given to our op
unchanged give MLX's result (so weights quantised by MLX load as they are)."""

import pytest
import torch

from mpskernels import ops
from mpskernels.anchors import REGISTRY, for_family
from mpskernels.anchors.mlx import quantized as mq
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare


def mlx_weights(n, k, dtype, seed):
    """Weights packed by the anchor's own MLX packer (anchors/mlx/quantized.pack), group size 64, 4 bits."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g)
    scales = (torch.rand(n, k // 64, generator=g) * 0.1 + 0.01).to(dtype)
    biases = (torch.randn(n, k // 64, generator=g) * 0.5).to(dtype)
    w = q.double() * scales.double().repeat_interleave(64, 1) + biases.double().repeat_interleave(64, 1)
    return mq.pack(q), scales, biases, w


def test_both_mlx_kernels_anchor_the_family():
    assert {op.name for op in for_family("quantized_linear")} == {"mlx.affine_qmv", "mlx.affine_qmm_t"}


def test_mlx_routes_at_llama_shapes():
    """M4 Max (g16s): rows below 15 (K, N <= 4096) or 13 go to qmv; few tiles split K (qmm_splitk)."""
    assert mq.qmv_batch_limit(4096, 4096) == 15 and mq.qmv_batch_limit(4096, 11008) == 13
    assert mq.splitk_partitions(64, 4096, 4096) == 2  # 128 x 2 tiles: K split in 2
    assert mq.splitk_partitions(128, 4096, 4096) == 1  # 512 tiles: plain qmm_t
    assert mq.splitk_partitions(64, 11008, 4096) == 1
    assert mq.splitk_partitions(20, 64, 64) == 1  # one group of K: nothing to split


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("n", [64, 40], ids=["aligned-N", "partial-N"])
def test_mlx_qmm_t_and_ours_agree_on_mlx_packed_weights(dtype, n):
    words, scales, biases, w = mlx_weights(n, 64, dtype, seed=n)
    x = (torch.randn(20, 64, generator=torch.Generator().manual_seed(1))).to(dtype)
    prepared = REGISTRY["mlx.affine_qmm_t"].prepare(x, words, scales, biases, backend="emulator")
    prepared.launch()
    assert prepared.kernels == (f"affine_qmm_t_{mq.TYPE_STRING[dtype]}_gs_64_b_4_alN_"
                                f"{'true' if n % 32 == 0 else 'false'}_batch_0",)
    with use_backend("emulator"):
        mine = ops.quantized_linear(x, words.view(torch.int32), scales, biases, None, 4, 64)
    want = x.double() @ w.t()
    slack = (x.double().abs() @ w.abs().t()) * 65 * 2.0**-24
    assert compare(mine, want, dtype, slack=slack).ok
    theirs = compare(prepared.out, want, dtype, slack=slack * (1 if dtype == torch.float32 else 2**13))
    assert theirs.ok, str(theirs)  # MLX stages x and W in the activation dtype: its 16-bit rounding is coarser


def test_mlx_qmm_t_refuses_rows_mlx_sends_elsewhere():
    words, scales, biases, _ = mlx_weights(64, 64, torch.float32, 0)
    with pytest.raises(ValueError, match="MLX runs a matrix-vector kernel for 8 rows"):
        REGISTRY["mlx.affine_qmm_t"].prepare(torch.randn(8, 64), words, scales, biases)
    words, scales, biases, _ = mlx_weights(64, 256, torch.float32, 0)
    with pytest.raises(ValueError, match="MLX splits K in 4"):
        REGISTRY["mlx.affine_qmm_t"].prepare(torch.randn(20, 256), words, scales, biases)
