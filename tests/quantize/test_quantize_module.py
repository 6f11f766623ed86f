"""mpskernels.quantize(model): the packed layout, the quantisation error, which layers are replaced and which kept
(with the reason), the report, state_dict / deepcopy / torch.save round trips, restore() refused, gradients.
These run the op's PyTorch reference (CPU); the kernels are tested on the emulator in test_quantized_kernels.py."""

import copy
import io

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels.quantize import QuantizedLinear, dequantize, pack, quantize, quantize_weight, unpack


class Block(nn.Module):
    """A tiny LM-shaped model: embedding, two projections, an odd-sized one, a head tied to the embedding."""

    def __init__(self, tie=False):
        super().__init__()
        self.embed = nn.Embedding(50, 64)
        self.up = nn.Linear(64, 96)
        self.down = nn.Linear(96, 64, bias=False)
        self.odd = nn.Linear(40, 8)  # in_features not a multiple of any group size
        self.lm_head = nn.Linear(64, 50, bias=False)
        if tie:
            self.lm_head.weight = self.embed.weight

    def forward(self, ids):
        h = self.embed(ids)
        h = h + self.down(torch.relu(self.up(h)))
        return self.lm_head(h), self.odd(h[..., :40])


def block(tie=False, seed=0):
    torch.manual_seed(seed)
    return Block(tie).eval()


# ---- the packed layout ----


def test_packing_layout_is_the_documented_one():
    """4-bit: values 1..8 of a row fill one word, the first in the lowest bits; 8-bit: 4 per word."""
    q = torch.arange(1, 9).reshape(1, 8)
    assert pack(q, 4).tolist() == [[0x87654321 - 2**32]]  # as int32
    assert pack(torch.tensor([[0x12, 0x34, 0x56, 0xFF]]), 8).tolist() == [[0xFF563412 - 2**32]]
    gen = torch.Generator().manual_seed(0)
    for bits in (4, 8):
        q = torch.randint(0, 2**bits, (5, 64), generator=gen)
        assert pack(q, bits).dtype == torch.int32 and pack(q, bits).shape == (5, 64 * bits // 32)
        assert torch.equal(unpack(pack(q, bits), bits), q)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=lambda d: str(d)[6:])
def test_quantisation_error_is_at_most_half_a_step(bits, group_size, dtype):
    gen = torch.Generator().manual_seed(bits * group_size)
    w = (torch.randn(6, 256, generator=gen) * 0.1).to(dtype)
    packed, scales, biases = quantize_weight(w, bits, group_size)
    assert scales.dtype == biases.dtype == dtype and scales.shape == (6, 256 // group_size)
    err = (dequantize(packed, scales, biases, bits, group_size, torch.float64) - w.double()).abs()
    step = scales.double().repeat_interleave(group_size, -1)
    # Half a step: the stored (rounded) scale and bias still cover the group's range.
    assert (err <= step / 2 * (1 + 1e-9)).all()


def test_a_constant_group_is_exact():
    w = torch.full((2, 64), 0.3)
    w[1, 32:] = torch.linspace(-1, 1, 32)
    packed, scales, biases = quantize_weight(w, 4, 32)
    assert scales[0].tolist() == [0.0, 0.0] and scales[1, 0] == 0.0 and scales[1, 1] > 0
    dq = dequantize(packed, scales, biases, 4, 32)
    assert torch.equal(dq[0], w[0]) and torch.equal(dq[1, :32], w[1, :32])


def test_bad_formats_are_refused_naming_the_argument():
    with pytest.raises(ValueError, match=r"mpskernels\.quantize: bits must be one of \(4, 8\), got 3"):
        quantize(block(), bits=3)
    with pytest.raises(ValueError, match=r"mpskernels\.quantize: group_size must be one of \(32, 64, 128\), got 16"):
        quantize(block(), group_size=16)
    with pytest.raises(ValueError, match="in_features 40 is not a multiple of group_size 32"):
        QuantizedLinear(40, 8, 4, 32)


# ---- which layers ----


def test_linears_are_replaced_and_the_rest_kept_with_reasons():
    model = quantize(block(), bits=4, group_size=32)
    assert isinstance(model.up, QuantizedLinear) and isinstance(model.down, QuantizedLinear)
    assert type(model.odd) is nn.Linear and type(model.lm_head) is nn.Linear and type(model.embed) is nn.Embedding
    report = model.mpskernels_quantize_report
    reasons = {r.name: r.reason for r in report.skipped}
    assert reasons == {"odd": "in_features 40 is not a multiple of group_size 32",
                       "lm_head": "output projection kept in full precision (name it in include= to quantise it)"}
    assert [r.name for r in report.quantized] == ["up", "down"]
    text = str(report)
    assert "2 layers at 4 bits" in text and "kept: in_features 40" in text and "saved" in text


def test_include_and_exclude_patterns():
    model = quantize(block(), bits=8, group_size=32, include=["lm_head", "embed", "d*"], exclude=["down"])
    assert isinstance(model.lm_head, QuantizedLinear)
    assert type(model.down) is nn.Linear and type(model.up) is nn.Linear
    reasons = {r.name: r.reason for r in model.mpskernels_quantize_report.skipped}
    assert reasons["down"] == "excluded" and reasons["up"] == "not in include"
    assert reasons["embed"].startswith("embeddings are not quantised")


def test_a_head_tied_to_the_embedding_is_kept_unless_included():
    model = quantize(block(tie=True), include=None, group_size=32)
    assert type(model.lm_head) is nn.Linear
    model = quantize(block(tie=True), include=["lm_head"], group_size=32)
    assert isinstance(model.lm_head, QuantizedLinear)
    assert type(model.embed) is nn.Embedding  # the embedding keeps its float weight


def test_hugging_face_conv1d_is_quantised_with_its_transposed_weight():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    conv = Conv1D(24, 64)  # nf=24 outputs, nx=64 inputs; weight (64, 24)
    nn.init.normal_(conv.weight, std=0.2)
    nn.init.normal_(conv.bias)
    model = nn.Sequential(conv)
    x = torch.randn(2, 3, 64)
    want = model(x)
    quantize(model, bits=8, group_size=64)
    assert isinstance(model[0], QuantizedLinear) and model[0].out_features == 24
    assert model.mpskernels_quantize_report.layers[0].kind == "Conv1D"
    torch.testing.assert_close(model(x), want, atol=0.02, rtol=0.02)


# ---- the report ----


def test_report_errors_and_memory_are_measured():
    model = block()
    original = {"up": model.up.weight.detach().clone(), "down": model.down.weight.detach().clone()}
    quantize(model, bits=4, group_size=64)
    for r in model.mpskernels_quantize_report.quantized:
        w = original[r.name].double()
        dq = getattr(model, r.name).dequantized_weight(torch.float64)
        assert r.max_abs_error == pytest.approx(float((dq - w).abs().max()))
        assert r.rel_frobenius_error == pytest.approx(float((dq - w).norm() / w.norm()))
        assert 0 < r.rel_frobenius_error < 0.15  # 4-bit, 16 levels per group of 64
        assert r.bytes_before == w.numel() * 4
        assert r.bytes_after == w.numel() // 2 + 2 * 4 * w.numel() // 64
    assert model.mpskernels_quantize_report.bytes_saved == sum(r.bytes_before - r.bytes_after
                                                               for r in model.mpskernels_quantize_report.quantized)


# ---- round trips ----


def test_state_dict_round_trips_into_a_freshly_quantised_model():
    ids = torch.randint(0, 50, (2, 5))
    model = quantize(block(seed=0), bits=4, group_size=32)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    fresh = quantize(block(seed=1), bits=4, group_size=32)
    assert not torch.equal(fresh(ids)[0], model(ids)[0])
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    for a, b in zip(fresh(ids), model(ids)):
        assert torch.equal(a, b)
    assert {"up.qweight", "up.scales", "up.biases", "up.bias", "down.qweight"} <= set(model.state_dict())
    assert "down.bias" not in model.state_dict()


def test_deepcopy_and_torch_save_of_the_whole_model():
    ids = torch.randint(0, 50, (1, 4))
    model = quantize(block(), bits=8, group_size=64)
    want = model(ids)[0]
    assert torch.equal(copy.deepcopy(model)(ids)[0], want)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(ids)[0], want)
    assert loaded.mpskernels_quantize_report.bits == 8


def test_dtype_and_device_moves_keep_the_words():
    model = quantize(block(), bits=4, group_size=32).to(torch.float16)
    assert model.up.qweight.dtype == torch.int32 and model.up.scales.dtype == torch.float16
    out = model(torch.randint(0, 50, (1, 3)))[0]
    assert out.dtype == torch.float16 and out.isfinite().all()


def test_restore_after_quantize_says_it_is_not_possible():
    model = quantize(block(), bits=4, group_size=32)
    with pytest.raises(RuntimeError, match=r"mpskernels\.restore: cannot restore up: .*quantize\(\).*cannot undo it"):
        mpskernels.restore(model)


# ---- training ----


def test_inference_only_weights_but_gradients_reach_the_input():
    """The quantised weights are buffers (nothing to train); the input's gradient is that of x @ W_q^T."""
    torch.manual_seed(0)
    layer = QuantizedLinear.from_weight(torch.randn(16, 64), torch.randn(16), 4, 32)
    assert list(layer.parameters()) == []
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).sum().backward()
    w = layer.dequantized_weight()
    torch.testing.assert_close(x.grad, torch.ones(3, 16) @ w)


def test_a_quantised_model_compiles_in_one_graph():
    """The op has a fake implementation: torch.compile(fullgraph=True) traces through QuantizedLinear."""
    from torch._dynamo.testing import CompileCounterWithBackend

    model = quantize(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)), bits=4, group_size=32)
    counter = CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    x = torch.randn(3, 64)
    torch.testing.assert_close(compiled(x), model(x))
    assert counter.frame_count == 1
    ops = {str(n.target) for n in counter.graphs[0].graph.nodes if n.op == "call_function"}
    assert any("quantized_linear" in o for o in ops)
