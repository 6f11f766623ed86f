"""What optimize()'s report claims: the backend and launches of each swap, "not launched" where the kernel never ran
on the example inputs, "not checked" on empty inputs, the tolerance next to the errors, and one line when the
model's device has no kernel backend."""

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels.optimize import OptimizeConfig, optimize, swapped_modules


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


def test_without_a_kernel_backend_nothing_is_swapped_and_one_line_says_why():
    model = optimize(nn.Sequential(nn.SiLU(), nn.LayerNorm(8)), example_inputs=(torch.randn(2, 8),))
    report = model.mpskernels_report
    assert swapped_modules(model) == {} and report.entries == []
    text = str(report)
    assert "\n" not in text and "no kernel backend runs on cpu tensors" in text
    assert "not faster than PyTorch's own ops" in text and "MPSKERNELS_BACKEND=emulator" in text


def test_an_empty_input_is_not_checked_and_launches_nothing(emulator):
    model = optimize(nn.Sequential(nn.SiLU()), example_inputs=(torch.randn(0, 8),))
    report = model.mpskernels_report
    (entry,) = report.entries
    assert entry.status == "not launched" and entry.detail == "not checked: empty input"
    assert entry.launches == 0 and entry.backend == "emulator"
    assert report.output_check is None or report.output_check == "not checked: empty input"
    assert swapped_modules(model) == {}


def test_multihead_attention_asked_for_its_weights_is_not_launched_and_says_why(emulator):
    mha = nn.MultiheadAttention(64, 1, batch_first=True).eval()
    x = torch.randn(1, 3, 64)
    optimize(mha, example_inputs=(x, x, x))  # need_weights defaults to True
    (entry,) = mha.mpskernels_report.entries
    assert entry.status == "not launched" and entry.launches == 0
    assert "need_weights=True" in entry.detail and "need_weights=False" in entry.detail
    assert swapped_modules(mha) == {}


def test_a_transformer_encoder_layer_on_its_fast_path_reports_its_modules_as_not_launched(emulator):
    layer = nn.TransformerEncoderLayer(128, 2, dim_feedforward=32, batch_first=True).eval()  # head_dim 64
    x = torch.randn(1, 3, 128)
    expected = layer(x)
    optimize(layer, example_inputs=(x,))
    report = layer.mpskernels_report
    assert swapped_modules(layer) == {} and report.swapped == []
    not_launched = {e.module: e.detail for e in report.not_launched}
    assert set(not_launched) == {"norm1", "norm2", "self_attn"}, str(report)
    assert all(d.startswith("checked, but not called when the model runs without optimize()'s hooks: its "
                            "TransformerEncoderLayer runs PyTorch's fused fast path") for d in not_launched.values())
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


def test_a_swapped_entry_names_its_backend_launches_and_tolerance(emulator):
    model = optimize(nn.Sequential(nn.LayerNorm(8)), example_inputs=(torch.randn(2, 8),))
    (entry,) = model.mpskernels_report.swapped
    assert (entry.backend, entry.launches) == ("emulator", 1)
    assert "ok: max abs" in entry.detail and "tolerance atol 2e-06 + rtol 2e-05" in entry.detail
    text = str(model.mpskernels_report)
    assert "emulator" in text.splitlines()[2] and "0 not launched" in text


def test_config_reads_version_1_and_checks_the_timing_mode():
    old = {"version": 1, "include": None, "exclude": ["silu"], "skip": [], "tolerance_scale": 1.0}
    assert OptimizeConfig.from_dict(old) == OptimizeConfig(exclude={"silu"})
    with pytest.raises(ValueError, match="unknown OptimizeConfig field"):
        OptimizeConfig.from_dict({**old, "timing": "off"})  # version 1 had no timing
    assert OptimizeConfig.from_dict(OptimizeConfig(timing="off").to_dict()).timing == "off"
    with pytest.raises(ValueError, match="timing must be one of"):
        OptimizeConfig(timing="sometimes")
