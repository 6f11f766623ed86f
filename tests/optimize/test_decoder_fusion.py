"""Issue 18: residual add + RMSNorm fused across a decoder's layers in eager optimize() (optimize/decoder.py).

The pair (a module's k-th add -> the norm module that reads the sum) is learned on the example inputs; the add
then launches add_rms_norm and hands the norm to its partner, which takes it only for that very, unchanged tensor.
Checked here against float64, against the unfused model, on strided inputs, for the cases that must not fuse, and
end to end: 32 greedy tokens through model.generate and the KV cache, identical to eager."""

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels import launches
from mpskernels.optimize import optimize, restore, swapped_modules
from mpskernels.optimize.pending import PENDING


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


class Norm(nn.Module):
    """An RMSNorm written out (recognised by its computation)."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(d) + 0.5)
        self.variance_epsilon = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * self.weight


class Layer(nn.Module):
    """A pre-norm residual layer: the add's sum is read by the next layer's norm (or the model's final one)."""

    def __init__(self, d):
        super().__init__()
        self.norm = Norm(d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        return x + self.proj(self.norm(x))


class Stack(nn.Module):
    def __init__(self, d, n=3):
        super().__init__()
        self.layers = nn.ModuleList(Layer(d) for _ in range(n))
        self.final = Norm(d)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.final(x)


def float64_stack(model, x):
    x = x.double()
    for layer in model.layers:
        n = layer.norm
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + n.variance_epsilon) * n.weight.double()
        x = x + h @ layer.proj.weight.double().T + layer.proj.bias.double()
    f = model.final
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + f.variance_epsilon) * f.weight.double()


def add_rms_norm_launches(model, x):
    calls = {"add_rms_norm": 0, "rms_norm": 0}
    real = mpskernels.ops.add_rms_norm, mpskernels.ops.rms_norm
    start = launches.count()
    from mpskernels.optimize import decoder, pending

    def counted(name, fn):
        def call(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return call

    decoder.ops.add_rms_norm = counted("add_rms_norm", real[0])
    pending.ops.rms_norm = counted("rms_norm", real[1])
    try:
        out = model(x)
    finally:
        decoder.ops.add_rms_norm, pending.ops.rms_norm = real
    return out, calls, launches.count() - start


def test_each_residual_add_fuses_with_the_next_norm(emulator):
    torch.manual_seed(0)
    model = Stack(48).eval()
    x = torch.randn(2, 5, 48)
    want = model(x)
    optimize(model, example_inputs=(x,))
    kernels = swapped_modules(model)
    assert [kernels[f"layers.{i}"] for i in range(3)] == ["add_rms_norm"] * 3, str(model.mpskernels_report)
    got, calls, _ = add_rms_norm_launches(model, torch.randn(2, 5, 48) * 0 + x)
    # layer 0's norm reads the input (no add before it): the only rms_norm launch; the others come with the adds
    assert calls == {"add_rms_norm": 3, "rms_norm": 1}
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.double(), float64_stack(model, x), rtol=1e-5, atol=1e-5)
    restore(model)
    assert swapped_modules(model) == {} and not any(hasattr(m, "_mpskernels_swap") for m in model.modules())


def test_under_inference_mode_the_adds_and_norms_run_apart(emulator):
    # inference tensors have no version counter: a sum changed in place after its add could not be seen, so the
    # add does not hand its norm over (and nothing raises)
    torch.manual_seed(2)
    model = Stack(32, n=2).eval()
    x = torch.randn(3, 32)
    optimize(model, example_inputs=(x,))
    with torch.inference_mode():
        got, calls, _ = add_rms_norm_launches(model, x.clone())
    assert calls["add_rms_norm"] == 0 and calls["rms_norm"] == 3
    torch.testing.assert_close(got.double(), float64_stack(model, x), rtol=1e-5, atol=1e-5)


def test_strided_inputs_and_half_precision(emulator):
    torch.manual_seed(1)
    model = Stack(64, n=2).eval()
    optimize(model, example_inputs=(torch.randn(3, 64),))
    base = torch.randn(64, 7)
    strided = base.T  # [7, 64], not contiguous
    got, calls, _ = add_rms_norm_launches(model, strided)
    assert calls["add_rms_norm"] == 2
    torch.testing.assert_close(got.double(), float64_stack(model, strided), rtol=1e-5, atol=1e-5)
    half = model.to(torch.float16)
    x = torch.randn(4, 64, dtype=torch.float16)
    got, calls, _ = add_rms_norm_launches(half, x)
    assert calls["add_rms_norm"] == 2
    torch.testing.assert_close(got.double(), float64_stack(half, x.float()), rtol=2e-2, atol=2e-2)


class InPlaceAfterAdd(nn.Module):
    """The sum is changed in place before the norm reads it: the handed-over norm is stale and must not be used."""

    def __init__(self, d):
        super().__init__()
        self.norm = Norm(d)

    def forward(self, x, y):
        h = x + y
        h.mul_(2.0)
        return self.norm(h)


def test_a_sum_changed_in_place_is_normalised_again(emulator):
    torch.manual_seed(2)
    model = InPlaceAfterAdd(32).eval()
    x, y = torch.randn(3, 32), torch.randn(3, 32)
    want = model(x, y)
    optimize(model, example_inputs=(x, y))
    got, calls, _ = add_rms_norm_launches(lambda a: model(a, y), x)
    assert calls == {"add_rms_norm": 1, "rms_norm": 1}  # fused, then refused: the norm runs its own launch
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not PENDING or all(e.source() is None or e.source()._version != e.version for e in PENDING.values())


class Broadcast(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = Norm(d)

    def forward(self, x, bias):
        return self.norm(x + bias)


def test_adds_the_kernel_does_not_take_run_pytorch(emulator):
    """A broadcasting add (bias [d] on [n, d]) is not a residual add of one shape: no route, PyTorch's add."""
    torch.manual_seed(3)
    model = Broadcast(32).eval()
    x, b = torch.randn(3, 32), torch.randn(32)
    optimize(model, example_inputs=(x, b))
    assert not [e for e in model.mpskernels_report.entries if e.kernel == "add_rms_norm"]
    assert swapped_modules(model) == {"norm": "rms_norm"}
    torch.testing.assert_close(model(x, b), model.norm.forward.original()(x + b), rtol=1e-5, atol=1e-6)


def test_a_norm_called_with_another_tensor_computes_its_own(emulator):
    """The pending norm belongs to one tensor: the partner called with an equal copy recomputes."""
    torch.manual_seed(4)
    model = Stack(32, n=1).eval()
    x = torch.randn(2, 32)
    optimize(model, example_inputs=(x,))
    total = model.layers[0](x)  # hands the final norm its pending result for `total`
    copy = total.clone()
    _, calls, _ = add_rms_norm_launches(model.final, copy)
    assert calls == {"add_rms_norm": 0, "rms_norm": 1}


transformers = pytest.importorskip("transformers")


def test_llama_generates_the_same_32_tokens(emulator):
    """Greedy decoding through generate() and the DynamicCache: the same tokens as eager, every layer's two adds
    fused (with the next layer's input norm across the layer boundary, and with the final norm after the last)."""
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = 0
    prompt = torch.randint(0, 96, (1, 7))
    want = model.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32)
    optimize(model, example_inputs=(prompt,))
    kernels = swapped_modules(model)
    assert [kernels[f"model.layers.{i}"] for i in range(3)] == ["add_rms_norm"] * 3, str(model.mpskernels_report)
    detail = next(e.detail for e in model.mpskernels_report.entries if e.module == "model.layers.2")
    assert "model.norm" in detail and "model.layers.2.post_attention_layernorm" in detail
    got = model.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32)
    assert got.shape == want.shape == (1, 39)
    assert torch.equal(got, want)
