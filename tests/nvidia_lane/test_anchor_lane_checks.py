"""The anchor lane's correctness rule (benches/anchor_lane.py), on the CPU: every result is held to the verifier's
bound (the dtype's tolerance, twice PyTorch's own error in the dtype, rtol times the RMS); an anchor kernel outside
it but within a few times the tolerance is "loose" (its own rounding in its dtype: timed and compared, marked), and
one further off is "wrong"; our kernels get no such allowance."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from mpskernels.kernels import FAMILIES
from mpskernels.tolerances import tolerance_for

BENCH = Path(__file__).resolve().parents[2] / "benches" / "anchor_lane.py"


@pytest.fixture(scope="module")
def lane():
    spec = importlib.util.spec_from_file_location("anchor_lane", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.CHECK_ONLY = True  # no CUDA events on the CPU
    return module


def rms_norm_case(dtype):
    family = next(f for f in FAMILIES if f.name == "rms_norm")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 512, generator=g).to(dtype)
    w = (torch.rand(512, generator=g) + 0.5).to(dtype)
    return family, (x, w, 1e-6)


def test_the_slack_is_pytorchs_own_error_twice_plus_rtol_times_the_rms(lane):
    family, args = rms_norm_case(torch.bfloat16)
    want = lane.expected(family, args, torch.bfloat16)
    x, w, eps = (a.double() if isinstance(a, torch.Tensor) else a for a in args)
    exact = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w  # the documented formula, in float64
    torch.testing.assert_close(want[0], exact)
    native = torch.nn.functional.rms_norm(args[0], (512,), args[1], 1e-6).double()
    rms = exact.pow(2).mean().sqrt()
    torch.testing.assert_close(want.slack[0], 2 * (native - exact).abs() + 1e-2 * rms)


def test_ours_is_wrong_where_an_anchor_is_loose_and_garbage_is_wrong_for_both(lane, monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)  # the results are on the CPU
    family, args = rms_norm_case(torch.float16)
    want = lane.expected(family, args, torch.float16)
    tol = tolerance_for(torch.float16)
    magnitude = float(want[0].abs().max())
    rounded = want[0].clone()
    rounded[0, 0] += 4 * (tol.atol + tol.rtol * magnitude) + float(want.slack[0][0, 0])  # rounding-sized
    garbage = want[0].clone()
    garbage[3, 7] += magnitude  # a wrong element
    for got, anchor_status, ours_status in ((rounded, "loose", "wrong"), (garbage, "wrong", "wrong"),
                                            (want[0], "ok", "ok")):
        out = got.to(torch.float16)
        check = lambda **kw: lane.run_checked(lambda: None, lambda _: (out,), want, torch.float16, **kw)  # noqa: E731
        assert check(anchor=True).status == anchor_status
        assert check().status == ours_status
    assert "the anchor's own rounding" in lane.run_checked(lambda: None, lambda _: (rounded.half(),), want,
                                                            torch.float16, anchor=True).note


def test_a_page_names_the_json_written_beside_it(lane, tmp_path):
    assert lane.data_name(lane.ROOT / "docs" / "anchor-lane-bf16.json") == "docs/anchor-lane-bf16.json"
    assert lane.data_name(tmp_path / "run.json") == "run.json"  # outside the repository: beside the page


def test_compile_undoes_an_earlier_no_compile(lane):
    """lane_stage's run.sh passes --no-compile first; a full run passes --compile after it."""
    assert lane.arguments().parse_args(["--no-compile"]).no_compile
    assert not lane.arguments().parse_args(["--no-compile", "--compile"]).no_compile
    assert not lane.arguments().parse_args([]).no_compile
