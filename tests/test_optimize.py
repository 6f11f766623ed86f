"""optimize(model): generic matching, verification and rollback, the report, config, restore, the kill switch."""

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels import ops
from mpskernels.optimize import OptimizeConfig, optimize, restore, swapped_modules


class LlamaStyleRMSNorm(nn.Module):
    """RMSNorm as model code writes it out (the class is unknown to mpskernels)."""

    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(size) + 0.5)
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        h = hidden_states.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (self.weight * h).to(hidden_states.dtype)


class HandWrittenSiLU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class HandWrittenGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / 2**0.5))


class Softsign(nn.Module):
    """An activation mpskernels has no kernel for."""

    def forward(self, x):
        return x / (1 + x.abs())


class ScaledNorm(nn.Module):
    """Looks like an RMSNorm (weight + eps) but computes something else."""

    def __init__(self, size):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = 1e-5

    def forward(self, x):
        return x * self.weight / (x.abs().amax(-1, keepdim=True) + self.eps)


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 32), LlamaStyleRMSNorm(32), HandWrittenSiLU(),
        nn.Linear(32, 32), nn.RMSNorm(32), nn.SiLU(), HandWrittenGELU(), ScaledNorm(32), nn.SiLU(inplace=True),
        Softsign(), nn.GELU(approximate="tanh"),
    ).eval()  # fmt: skip


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


def test_swaps_by_type_and_by_computation_and_reports_the_rest(emulator):
    model = make_model()
    x = torch.randn(5, 16)
    expected = model(x)
    optimize(model, example_inputs=(x,))
    report = model.mpskernels_report
    assert report.counts() == {"rms_norm": 2, "silu": 2, "gelu": 2}
    assert swapped_modules(model) == {"1": "rms_norm", "2": "silu", "4": "rms_norm", "5": "silu", "6": "gelu",
                                      "10": "gelu"}
    assert {e.module: e.matched_by for e in report.swapped} == {"1": "computation", "2": "computation",
                                                                 "4": "type", "5": "type", "6": "computation",
                                                                 "10": "type"}
    skipped = {e.module: e.detail for e in report.skipped}
    assert skipped["7"].startswith("computes none of") and "rms_norm" in skipped["7"]
    assert "in-place" in skipped["8"]
    assert skipped["9"] == "computes none of gelu, hardswish, mish, silu (outputs differ on probe inputs)"
    assert report.output_check.startswith("ok")
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
    text = str(report)
    assert "LlamaStyleRMSNorm" in text and "6 swapped, 3 skipped, 0 rolled back" in text
    assert [e["status"] for e in report.as_dict()["entries"]].count("swapped") == 6


def test_state_dict_is_untouched_and_restore_undoes_everything(emulator):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = {k: v.data_ptr() for k, v in model.state_dict().items()}
    optimize(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) and after[k].data_ptr() == pointers[k] for k in before)
    restore(model)
    assert swapped_modules(model) == {}
    assert "forward" not in model[1].__dict__ and not hasattr(model, "mpskernels_report")


def test_a_swap_that_disagrees_is_rolled_back(emulator, monkeypatch):
    model = make_model()
    x = torch.randn(3, 16)
    expected = model(x)
    monkeypatch.setattr(ops, "rms_norm", lambda x, w, eps: torch.zeros_like(x))
    optimize(model, example_inputs=(x,))
    report = model.mpskernels_report
    # The hand-written norm fails its probe check; nn.RMSNorm is matched by type, then fails on the example inputs.
    assert [e.module for e in report.rolled_back] == ["4"]
    assert "MISMATCH" in report.rolled_back[0].detail
    assert "4" not in swapped_modules(model)
    torch.testing.assert_close(model(x), expected)


def test_kill_switch(emulator, monkeypatch):
    model = make_model()
    x = torch.randn(2, 16)
    expected = model(x)
    optimize(model)
    calls = []
    monkeypatch.setattr(ops, "silu", lambda t: calls.append(1) or torch.nn.functional.silu(t))
    monkeypatch.setenv("MPSKERNELS_DISABLE", "1")
    torch.testing.assert_close(model(x), expected)  # optimised earlier, but switched off now
    assert calls == []
    fresh = make_model()
    optimize(fresh)
    assert fresh.mpskernels_report.disabled and swapped_modules(fresh) == {}
    assert "disabled" in str(fresh.mpskernels_report)


def test_config_include_exclude_and_skip(emulator):
    model = optimize(make_model(), OptimizeConfig(exclude={"silu", "gelu"}))
    assert set(swapped_modules(model).values()) == {"rms_norm"}
    assert any("excluded by config" in e.detail for e in model.mpskernels_report.skipped)
    model = optimize(make_model(), OptimizeConfig(include={"silu"}, skip={"5"}))
    assert swapped_modules(model) == {"2": "silu"}


def test_config_is_frozen_and_round_trips():
    config = OptimizeConfig(include={"rms_norm"}, skip=["layers.0.norm"], tolerance_scale=2.0)
    assert OptimizeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(Exception):
        config.include = None
    with pytest.raises(ValueError, match="version 99"):
        OptimizeConfig.from_dict({"version": 99})
    with pytest.raises(ValueError, match="unknown OptimizeConfig field"):
        OptimizeConfig.from_dict({"inclde": ["silu"]})


def test_optimize_twice_changes_nothing_more(emulator):
    model = optimize(make_model())
    first = swapped_modules(model)
    first_report = model.mpskernels_report.swapped
    optimize(model)
    assert swapped_modules(model) == first
    # the second report still lists what is swapped (it used to come back blank: issue 15, item 5)
    assert model.mpskernels_report.swapped == first_report


def test_swapped_modules_take_keyword_calls(emulator):
    norm = nn.RMSNorm(8, eps=1e-5)
    x = torch.randn(2, 8)
    expected = norm(x)
    optimize(norm)
    import inspect

    name = list(inspect.signature(nn.RMSNorm.forward).parameters)[1]  # after self
    torch.testing.assert_close(norm(**{name: x}), expected)
    torch.testing.assert_close(norm(x), expected)


def test_verification_on_the_first_call(emulator):
    model = make_model()
    x = torch.randn(4, 16)
    expected = model(x)
    optimize(model, example_inputs="first_call")
    assert swapped_modules(model) == {} and model.mpskernels_report.output_check.startswith("pending")
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
    report = model.mpskernels_report
    assert report.counts() == {"rms_norm": 2, "silu": 2, "gelu": 2}
    assert all(e.detail.startswith("checked on example inputs") for e in report.swapped)
    with pytest.raises(ValueError, match="first_call"):
        optimize(make_model(), example_inputs="first")


def test_multihead_attention_is_swapped_and_checked(emulator):
    torch.manual_seed(0)
    for batch_first in (True, False):
        mha = nn.MultiheadAttention(64, 1, batch_first=batch_first).eval()  # head_dim 64: the kernel's case
        x = torch.randn(2, 9, 64) if batch_first else torch.randn(9, 2, 64)
        mask = nn.Transformer.generate_square_subsequent_mask(9)
        expected = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
        optimize(mha, example_inputs=(x, x, x), example_kwargs={"need_weights": False, "attn_mask": mask})
        assert mha.mpskernels_report.counts() == {"attention": 1}
        assert mha.mpskernels_report.swapped[0].detail.startswith("checked on example inputs")
        torch.testing.assert_close(mha(x, x, x, need_weights=False, attn_mask=mask)[0], expected,
                                   rtol=1e-5, atol=1e-5)
        weights = mha(x, x, x)[1]  # weights asked for: the module's own path
        assert weights is not None and weights.shape[-1] == 9


# ---- attention blocks: their own forward, with SDPA and rotary calls routed ----


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_q_and_k(q, k, cos, sin, unsqueeze_dim=1):
    """HF's apply_rotary_pos_emb, under another name."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class SelfAttention(nn.Module):
    """A hand-written attention block: fused qkv projection, optional rotary, F.scaled_dot_product_attention."""

    def __init__(self, dim=128, heads=2, dropout=0.0, rotary=True):
        super().__init__()
        self.heads, self.dropout, self.rotary = heads, dropout, rotary
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.rotary:
            angles = torch.arange(s, dtype=x.dtype)[:, None] * 0.1 ** torch.arange(q.shape[-1] // 2, dtype=x.dtype)
            angles = torch.cat((angles, angles), -1)[None]
            q, k = rotate_q_and_k(q, k, angles.cos(), angles.sin())
        o = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=mask is None)
        return self.out(o.transpose(1, 2).reshape(b, s, -1))


@pytest.fixture
def inference(emulator):
    with torch.no_grad():  # routed calls fall back to the module's own where gradients are needed
        yield


def counting(monkeypatch, *names):
    calls = dict.fromkeys(names, 0)
    for n in names:
        real = getattr(ops, n)
        monkeypatch.setattr(ops, n, lambda *a, _n=n, _real=real, **k: (
            calls.__setitem__(_n, calls[_n] + 1), _real(*a, **k))[1])
    return calls


def test_hand_written_attention_block_is_routed_and_checked(inference, monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 128), SelfAttention()).eval()
    x = torch.randn(2, 9, 16)
    expected = model(x)
    optimize(model, example_inputs=(x,))
    report = model.mpskernels_report
    assert report.counts() == {"rope+attention": 1} and swapped_modules(model) == {"1": "rope+attention"}
    (entry,) = report.swapped
    assert entry.detail.startswith("rotate_q_and_k -> rope; scaled_dot_product_attention -> attention (routed "
                                   "attention x1, rope x1)") and "checked on example inputs: ok" in entry.detail
    calls = counting(monkeypatch, "attention", "rope")
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    assert calls == {"attention": 1, "rope": 1}
    monkeypatch.setenv("MPSKERNELS_DISABLE", "1")
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    assert calls == {"attention": 1, "rope": 1}
    monkeypatch.delenv("MPSKERNELS_DISABLE")
    restore(model)
    assert "forward" not in model[1].__dict__
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert calls == {"attention": 1, "rope": 1}


def test_attention_block_is_found_in_its_code_without_example_inputs(inference, monkeypatch):
    torch.manual_seed(0)
    block = SelfAttention(rotary=False).eval()
    x = torch.randn(1, 9, 128)
    mask = torch.rand(9, 9) > 0.3  # boolean: True attends; row 0 of a random mask may be all False
    mask[0] = False
    expected = block(x, mask)
    optimize(block)
    (entry,) = block.mpskernels_report.swapped
    # Found in the code: both routes are installed; the rotary one is not called with rotary=False.
    assert entry.kernel == "rope+attention" and "not checked (no example inputs given)" in entry.detail
    calls = counting(monkeypatch, "attention", "rope")
    got = block(x, mask)
    assert calls == {"attention": 1, "rope": 0}
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)  # the masked-out row is zeros, as SDPA's


def test_attention_calls_the_kernel_does_not_take_keep_the_module(inference):
    torch.manual_seed(0)
    x = torch.randn(2, 9, 128)
    cases = {  # module, its inputs -> why its SDPA call is not routed
        "dropout in training": (SelfAttention(dropout=0.1, rotary=False).train(), (x,), "dropout 0.1 (training)"),
        "head_dim 16": (SelfAttention(heads=8, rotary=False).eval(), (x,), "head_dim 16 has no kernel"),
        "float32 mask, bfloat16 q": (SelfAttention(rotary=False).eval().to(torch.bfloat16),
                                     (x.bfloat16(), torch.zeros(9, 9)),
                                     "a torch.float32 mask with q in torch.bfloat16"),
    }
    for name, (block, inputs, reason) in cases.items():
        optimize(block, example_inputs=inputs)
        report = block.mpskernels_report
        assert swapped_modules(block) == {} and report.rolled_back == [], name
        (entry,) = report.skipped
        assert "no call on the example inputs could be routed" in entry.detail and reason in entry.detail, name


def test_only_the_routes_that_applied_on_the_example_inputs_are_kept(inference, monkeypatch):
    torch.manual_seed(0)
    block = SelfAttention(heads=8).eval()  # head_dim 16: the rotary routes, SDPA does not
    x = torch.randn(2, 9, 128)
    expected = block(x)
    optimize(block, example_inputs=(x,))
    (entry,) = block.mpskernels_report.swapped
    assert entry.kernel == "rope" and "routed rope x1; not routed: scaled_dot_product_attention: head_dim 16" \
        in entry.detail
    calls = counting(monkeypatch, "attention", "rope")
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert calls == {"attention": 0, "rope": 1}


def test_a_routed_block_compiles(inference):
    """Under torch.compile the block runs its own forward (Dynamo cannot guard on the globals of the forward's
    routed copy); the compile backend rewrites attention and rotary itself."""
    torch.manual_seed(0)
    block = SelfAttention().eval()
    x = torch.randn(1, 9, 128)
    expected = block(x)
    optimize(block, example_inputs=(x,))
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(block, backend="eager")(x), expected, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


def test_config_rules_out_each_route(inference):
    torch.manual_seed(0)
    x = torch.randn(1, 9, 128)
    block = optimize(SelfAttention().eval(), OptimizeConfig(exclude={"attention"}), example_inputs=(x,))
    assert block.mpskernels_report.counts() == {"rope": 1}
    block = optimize(SelfAttention().eval(), OptimizeConfig(exclude={"attention", "rope"}), example_inputs=(x,))
    (entry,) = block.mpskernels_report.skipped
    assert entry.detail == "kernel attention excluded by config; kernel rope excluded by config"


def test_a_routed_block_that_fails_on_the_example_inputs_is_rolled_back(inference, monkeypatch):
    torch.manual_seed(0)
    block = SelfAttention().eval()
    x = torch.randn(2, 9, 128)
    expected = block(x)

    def broken(*args):
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(ops, "attention", broken)
    optimize(block, example_inputs=(x,))
    (entry,) = block.mpskernels_report.rolled_back
    assert entry.kernel == "rope+attention" and "RuntimeError: no kernel today" in entry.detail
    assert swapped_modules(block) == {}
    torch.testing.assert_close(block(x), expected, rtol=0, atol=0)


def test_routed_attention_keeps_eager_errors_and_arguments(inference):
    from mpskernels.optimize.routes import sdpa_as_attention

    q = torch.randn(1, 2, 9, 64)
    assert "does not broadcast" in sdpa_as_attention(q, q, q, torch.zeros(3, 9, 9), 0.0, False, None, False)
    assert "top-left" in sdpa_as_attention(q, q[:, :, :5], q[:, :, :5], None, 0.0, True, None, False)
    four_heads = torch.randn(1, 4, 9, 64)
    assert "enable_gqa" in sdpa_as_attention(four_heads, q, q, None, 0.0, False, None, False)
    block = SelfAttention(rotary=False).eval()
    optimize(block)
    with pytest.raises(RuntimeError) as routed:
        block(torch.randn(1, 9, 128), torch.zeros(3, 9, 9))  # SDPA's own error: the call is not routed
    restore(block)
    with pytest.raises(RuntimeError) as original:
        block(torch.randn(1, 9, 128), torch.zeros(3, 9, 9))
    assert str(routed.value) == str(original.value)


def test_rotary_recogniser_probes_the_function():
    from mpskernels.optimize.routes import RotaryForm, rotary_form

    def interleaved(q, k, cos, sin):
        def every_two(x):
            return torch.stack((-x[..., 1::2], x[..., ::2]), -1).flatten(-2)
        cos, sin = cos[:, None], sin[:, None]
        return q * cos + every_two(q) * sin, k * cos + every_two(k) * sin

    def wrong_sign(q, k, cos, sin):
        cos, sin = cos[:, None], sin[:, None]
        return q * cos - rotate_half(q) * sin, k * cos - rotate_half(k) * sin

    def partial(q, k, cos, sin):  # GPT-NeoX: the tables' width is the rotary dimension; the rest passes through
        r = cos.shape[-1]
        (q_embed, k_embed) = rotate_q_and_k(q[..., :r], k[..., :r], cos, sin)
        return torch.cat((q_embed, q[..., r:]), -1), torch.cat((k_embed, k[..., r:]), -1)

    assert rotary_form(rotate_q_and_k) == RotaryForm(interleaved=False, partial=False)
    assert rotary_form(interleaved) == RotaryForm(interleaved=True, partial=False)
    assert rotary_form(partial) == RotaryForm(interleaved=False, partial=True)
    assert rotary_form(wrong_sign) is None and rotary_form(rotate_half) is None  # one parameter: not probed
