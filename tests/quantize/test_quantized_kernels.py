"""The quantized_linear kernels (metal/quantized.metal) on the emulator against float64 dequantise-then-matmul
written here from the documented layout (not the op's reference, not packing.unpack): random weights quantised
from float ones, both bit widths, the three group sizes, every dtype, decode (qmv) and tiled (qmm) row counts,
K past a whole qmv step, N and M off the tiles, strided and offset inputs, usage errors. Shapes stay small."""

import pytest
import torch

from mpskernels import ops, registry
from mpskernels.kernels import quantized as qk
from mpskernels.kernels.spec import TensorMeta
from mpskernels.quantize import QuantizedLinear, quantize_weight
from mpskernels.quantize.packing import pack
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def weight_from_words(w_q, scales, biases, bits, group_size):
    """Float64 W, one value at a time from the layout: value k of row n sits in word k * bits // 32 of the row,
    at bit (k % (32 // bits)) * bits, unsigned; W = scale * q + bias of its group."""
    n, words = w_q.shape
    k_total = words * 32 // bits
    out = torch.empty(n, k_total, dtype=torch.float64)
    for row in range(n):
        raw = [int(v) & 0xFFFFFFFF for v in w_q[row].tolist()]
        for k in range(k_total):
            q = (raw[k * bits // 32] >> ((k % (32 // bits)) * bits)) & ((1 << bits) - 1)
            g = k // group_size
            out[row, k] = float(scales[row, g]) * q + float(biases[row, g])
    return out


def expected(x, w_q, scales, biases, bias, bits, group_size):
    y = x.double() @ weight_from_words(w_q, scales, biases, bits, group_size).t()
    return y if bias is None else y + bias.double()


def emulated(*args):
    with use_backend("emulator"):
        return torch.ops.mpskernels.quantized_linear(*args)


def check(args):
    """Kernel vs float64: the dtype's tolerance plus the fp32 accumulation's worst case (K units of 2^-24 of
    sum |x w|, which random data needs: the outputs cancel)."""
    x, w_q, scales, biases, bias, bits, group_size = args
    got = emulated(*args)
    assert got.dtype == x.dtype and got.shape == (*x.shape[:-1], w_q.shape[0])
    magnitude = x.double().abs() @ weight_from_words(w_q, scales, biases, bits, group_size).abs().t()
    slack = magnitude * (x.shape[-1] + 1) * 2.0**-24
    result = compare(got, expected(*args), x.dtype, slack=slack)
    assert result.ok, str(result)
    return got


def case(rows, n, k, bits, group_size, dtype, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w_q, scales, biases = quantize_weight(torch.randn(n, k, generator=gen) * 0.3, bits, group_size, dtype)
    x = torch.randn(*rows, k, generator=gen).to(dtype)
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    return (x, w_q, scales, biases, b, bits, group_size)


def test_the_oracle_reads_a_hand_packed_word():
    w_q = torch.tensor([[0x87654321 - 2**32, 0]], dtype=torch.int32)  # 4-bit values 1..8, then eight 0s
    w = weight_from_words(w_q, torch.tensor([[0.5]]), torch.tensor([[-1.0]]), 4, 32)
    assert w[0, :8].tolist() == [0.5 * v - 1 for v in range(1, 9)] and (w[0, 8:16] == -1).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_decode_and_prefill_kernels_every_format(bits, group_size, dtype):
    """One decode call (3 rows: qmv) and one tiled call (11 rows: qmm) per format and dtype."""
    seed = bits * 1000 + group_size
    check(case((3,), 11, 2 * group_size, bits, group_size, dtype, bias=True, seed=seed))
    check(case((11,), 9, group_size, bits, group_size, dtype, bias=False, seed=seed + 1))


@pytest.mark.parametrize("bits", [4, 8])
def test_k_past_a_whole_decode_step(bits):
    """A qmv step covers 32 lanes x 128 / bits values (1024 at 4 bits, 512 at 8): K = one step + 32 leaves 31
    lanes idle in the second step."""
    k = 32 * 128 // bits + 32
    check(case((1,), 5, k, bits, 32, torch.float32, seed=bits))


@pytest.mark.parametrize("split", [True, False], ids=["k-split", "row-sets"])
@pytest.mark.parametrize("bits", [4, 8])
def test_decode_with_and_without_the_k_split(split, bits, monkeypatch):
    """qmv's SIMD groups either share a row set and take its K steps in turn (N up to QMV_SPLIT_MAX_N) or own a
    row set each: both at N off the row sets (4 rows each, 2 sets per threadgroup) and K past two whole steps."""
    monkeypatch.setattr(qk, "QMV_SPLIT_MAX_N", 1 << 30 if split else 0)
    k = 2 * 32 * 128 // bits + 64  # two SIMD groups' steps and a part: the second SIMD group's last step is partial
    for n in (1, 5, 11):
        args = case((2,), n, k, bits, 64, torch.bfloat16, seed=n + bits)
        assert qk.plan(*(TensorMeta.of(a) if isinstance(a, torch.Tensor) else a for a in args[:5]), bits,
                       64).constants["split_k"] == split
        check(args)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("bits", [4, 8])
def test_decode_reads_every_code_in_every_position_of_a_word(bits, dtype):
    """qmv reads a word's values in two ways (in place for the low positions, after one shift for the high ones;
    metal/quantized.metal, dot_packed): each of the 2^bits codes, the extremes included, sits in every position of
    a word (packed by the library's packer; the oracle reads the words itself), and x holds both large (30 in
    fp16, whose outputs must stay finite; 10^30 otherwise) and small (10^-6) values."""
    n, k, group_size = 2 ** bits // 4 + 3, 2 * 32 * 128 // bits, 64
    per = 32 // bits
    codes = (torch.arange(k)[None, :] // per + torch.arange(k)[None, :] % per * 3 + torch.arange(n)[:, None]) % 2**bits
    codes[0] = 2**bits - 1  # one row of the top code, every position
    gen = torch.Generator().manual_seed(bits)
    scales = (torch.rand(n, k // group_size, generator=gen) + 0.5) * 16 / 2**bits * torch.where(
        torch.rand(n, k // group_size, generator=gen) < 0.5, -1.0, 1.0)
    biases = torch.randn(n, k // group_size, generator=gen)
    x = torch.randn(2, k, generator=gen)
    x[0, ::7] *= 30.0 if dtype == torch.float16 else 1e30
    x[1, ::5] = 1e-6
    args = (x.to(dtype), pack(codes, bits), scales.to(dtype), biases.to(dtype), None, bits, group_size)
    assert all({int(c) for c in codes[:, i::per].flatten()} == set(range(2**bits)) for i in range(per))
    got = check(args)
    assert torch.isfinite(got).all()


def test_tiles_at_the_edges():
    """M and N around the qmm tile (32) and the qmv split (8 rows), N around a qmv SIMD group's 4 rows."""
    for rows, n in [((8,), 4), ((8,), 5), ((9,), 33), ((32,), 32), ((33,), 31), ((65,), 1)]:
        check(case(rows, n, 64, 4, 64, torch.float16, seed=rows[0] * 100 + n))


def test_the_host_picks_qmv_up_to_8_rows():
    def kernel(m):
        meta = TensorMeta((m, 64), torch.float16)
        return qk.plan(meta, TensorMeta((16, 32), torch.int32), TensorMeta((16, 1), torch.float16),
                       TensorMeta((16, 1), torch.float16), None, 4, 64).kernel
    assert kernel(1) == kernel(8) == "quantized_qmv_4bit_float16"
    assert kernel(9) == "quantized_qmm_4bit_float16"


def test_strided_and_offset_inputs_give_the_contiguous_result():
    args = case((2, 5), 13, 128, 4, 32, torch.float32)
    want = emulated(*args)
    x = args[0]
    strided = torch.zeros(2, 5, 256)[..., ::2]
    strided.copy_(x)
    offset = torch.zeros(x.numel() + 3)[3:].view(x.shape)  # not 16-byte aligned: copied before the launch
    offset.copy_(x)
    transposed_scales = args[2].t().contiguous().t()
    for x2 in (strided, offset):
        assert torch.equal(emulated(x2, *args[1:]), want)
    assert torch.equal(emulated(x, args[1], transposed_scales, *args[3:]), want)


def test_module_runs_the_kernel_in_fp16_activations_of_an_fp32_model():
    torch.manual_seed(0)
    layer = QuantizedLinear.from_weight(torch.randn(12, 64) * 0.2, torch.randn(12), 8, 32)
    x = torch.randn(2, 64)
    with use_backend("emulator"):
        got = layer(x.half())
    # The layer computes in the activations' dtype: its scales, biases and bias rounded to fp16.
    want = expected(x.half(), layer.qweight, layer.scales.half(), layer.biases.half(), layer.bias.half(), 8, 32)
    assert got.dtype == torch.float16 and layer.scales.dtype == torch.float32
    assert compare(got, want, torch.float16).ok


@pytest.mark.parametrize("backend", ["reference", "emulator"])
@pytest.mark.parametrize("mutate, error, pattern", [
    (lambda a: (a[0], a[1].float(), *a[2:]), ValueError, r"w_q must be a 2-D int32 tensor"),
    (lambda a: (*a[:5], 5, a[6]), ValueError, r"bits must be one of \(4, 8\), got 5"),
    (lambda a: (*a[:6], 16), ValueError, r"group_size must be one of \(32, 64, 128\), got 16"),
    (lambda a: (a[0][..., :40], *a[1:]), ValueError,
     r"x's last dimension 40 does not match w_q: w_q of shape \(7, 8\) holds 64 weights a row \(in_features\) "
     r"at 4 bits"),
    (lambda a: (a[0], a[1][:, :4], *a[2:]), ValueError, r"x's last dimension 64 does not match w_q: w_q of shape "
     r"\(7, 4\) holds 32 weights a row \(in_features\) at 4 bits"),
    (lambda a: (a[0][..., :40], a[1][:, :5], *a[2:]), ValueError,
     r"in_features 40 \(x's last dimension\) is not a multiple of group_size 32"),
    (lambda a: (a[0], a[1], a[2][:, :1], *a[3:]), ValueError, r"scales must have shape \(7, 2\)"),
    (lambda a: (*a[:4], a[4][:3], *a[5:]), ValueError, r"bias must have shape \(7,\)"),
    (lambda a: (a[0].double(), *a[1:]), TypeError, r"x has dtype torch\.float64"),
    (lambda a: (a[0], a[1], a[2].half(), *a[3:]), TypeError, r"all tensors must have one dtype"),
    (lambda a: (*a[:5], 4.0, a[6]), TypeError, r"bits must be an int, got float"),
], ids=["w_q-dtype", "bits", "group_size", "x-k", "w_q-shape", "k-groups", "scales-shape", "bias-shape", "float64", "mixed",
        "bits-type"])
def test_bad_arguments_name_the_op_and_the_argument(mutate, error, pattern, backend):
    args = mutate(case((2,), 7, 64, 4, 32, torch.float32))
    with use_backend(backend), pytest.raises(error, match=rf"mpskernels\.quantized_linear: {pattern}"):
        ops.quantized_linear(*args)


def test_empty_rows_launch_nothing():
    x, *rest = case((1,), 7, 64, 4, 32, torch.float32)
    with use_backend("emulator"):
        assert torch.ops.mpskernels.quantized_linear(x[:0], *rest).shape == (0, 7)
