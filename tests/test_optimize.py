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


def test_config_include_exclude_and_skip():
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


def test_optimize_twice_changes_nothing_more():
    model = optimize(make_model())
    first = swapped_modules(model)
    optimize(model)
    assert swapped_modules(model) == first
    assert model.mpskernels_report.swapped == []


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
