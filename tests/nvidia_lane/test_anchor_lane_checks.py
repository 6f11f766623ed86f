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


def test_ours_only_reaches_every_child_and_times_only_our_kernel(lane, monkeypatch, tmp_path):
    """--ours-only (one side of an A/B): the timed and warm-up children get it, and a child running it asks for no
    anchor, no torch.compile and no native op, and still checks our kernel against float64."""
    assert lane.child_flags(lane.arguments().parse_args(["--ours-only", "--quick"])) == ["--quick", "--ours-only"]
    assert lane.child_flags(lane.arguments().parse_args([])) == []

    def no_anchors(*_):
        raise AssertionError("an --ours-only child looked up the anchors")

    def no_native(*_):
        raise AssertionError("an --ours-only case timed torch's native op")

    family, args = rms_norm_case(torch.float32)
    checked = []
    monkeypatch.setattr(lane, "anchors_for", no_anchors)
    monkeypatch.setattr(lane, "torch_result", no_native)
    monkeypatch.setattr(lane, "selected_cases", lambda name, dtype, quick: [lane.Case("x 64x512", args)])
    monkeypatch.setattr(lane, "ours", lambda fam, a, want, dtype: checked.append(want) or lane.Result(1.0, "t", "ok"))
    monkeypatch.setattr(lane, "footprint", lambda *_: 0)
    monkeypatch.setattr(lane, "l2_bytes", lambda: 1)  # no CUDA device here
    monkeypatch.setattr(lane, "same_size_copy_us", lambda nbytes: None)
    rows = tmp_path / "rows.jsonl"
    opts = lane.arguments().parse_args(["--child", "--ours-only", "--rows", str(rows), "--jobs",
                                        "float32:rms_norm", "--deadline", "1e12"])
    assert lane.child(opts) == 0
    done = lane.read_rows(rows)
    assert done.rows[0].ours.status == "ok", done.rows[0].ours.note
    assert [r.case for r in done.rows] == ["x 64x512"] and done.rows[0].anchors == {}
    assert done.rows[0].torch_native is None and done.rows[0].torch_compile is None
    assert len(checked) == 1 and checked[0][0].dtype == torch.float64  # our result held to the float64 oracle


@pytest.mark.parametrize("stream_times, want", [
    ([251.2, 32.0], (31.9, "graph x62")),  # a slow first stretch: timed again, then as a graph
    ([300.0, 320.0], (300.0, "stream")),  # long either way: the lower stream time
    ([40.0], (31.9, "graph x50")),  # short at once: one stream timing picks the graph's size
])
def test_measure_times_a_long_stream_result_again(lane, monkeypatch, stream_times, want):
    times = iter(stream_times)
    monkeypatch.setattr(lane, "stream_us", lambda fn: next(times))
    monkeypatch.setattr(lane, "graph_us", lambda fn, n: 31.9)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    assert lane.measure(lambda: None) == want
    assert next(times, None) is None  # every stream timing asked for was used, and no more


def test_a_decode_step_sees_the_cache_and_the_earlier_new_tokens(lane, monkeypatch):
    # The multi-token decode rows' mask: token i of the newest t sits at position n - t + i (bottom-right, as a
    # decode step needs; PyTorch's is_causal would be top-left).
    monkeypatch.setattr(lane, "DEVICE", "cpu")
    mask = lane.decode_step_mask(3, 7)
    assert mask.shape == (1, 1, 3, 7) and mask.dtype == torch.bool
    assert mask[0, 0].int().tolist() == [[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]]


def test_mlx_prefill_rows_are_na_at_head_dims_its_kernel_file_does_not_instantiate(lane):
    from mpskernels.anchors.op import for_family

    steel = next(op for op in for_family("attention") if op.name == "mlx.steel_attention")
    q, k = torch.zeros(1, 4, 64, 96), torch.zeros(1, 2, 64, 96)
    with pytest.raises(NotImplementedError, match="head dims"):
        lane.attention_call(steel, (q, k, k, None, True, None, None))
    q, k = torch.zeros(1, 4, 64, 80), torch.zeros(1, 2, 64, 80)
    inputs, params = lane.attention_call(steel, (q, k, k, None, True, None, None))
    assert len(inputs) == 3 and params == {"causal": True}


def small_attention_cases(lane, dtype):
    """The anchor lane's attention case kinds at emulator sizes: decode of several tokens under the bottom-right
    boolean mask, prefill under an additive causal mask, causal prefill at head dims 80 and 96."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(dtype)

    mask = lane.additive_causal_mask(40, dtype)
    cases = [(f"decode Sq{t}", (r(1, 32, t, 64), r(1, 8, n, 64), r(1, 8, n, 64), lane.decode_step_mask(t, n), False,
                                 None, None)) for t, n in ((4, 200), (8, 300))]
    cases.append(("prefill additive mask", (r(1, 32, 40, 64), r(1, 8, 40, 64), r(1, 8, 40, 64), mask, False, None,
                                            None)))
    cases += [(f"prefill D{d}", (r(1, 4, 40, d), r(1, 2, 40, d), r(1, 2, 40, d), None, True, None, None))
              for d in (80, 96)]
    return cases


def test_the_attention_case_kinds_run_ours_and_every_anchor_on_the_emulator(lane, monkeypatch):
    # The lane's adapter (attention_call) and the anchors' host logic meet these inputs first on the device, where a
    # refusal costs a run; here each kind runs on the emulator and is held to the lane's own rule (its float64
    # oracle and run_checked), and each anchor either passes it or says why it does not cover the case.
    from mpskernels import registry
    from mpskernels.anchors.op import for_family
    from mpskernels.runtime import use_backend

    monkeypatch.setattr(lane, "DEVICE", "cpu")
    monkeypatch.setattr(lane, "CHECK_ONLY", True)  # checked, not timed
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)  # the results are on the CPU
    family = next(f for f in FAMILIES if f.name == "attention")
    dtype = torch.float16
    ran = {}
    for label, args in small_attention_cases(lane, dtype):
        want = lane.expected(family, args, dtype)
        with use_backend("emulator"):
            ours = registry.op("attention")(*args[:6])
        result = lane.run_checked(lambda: None, lambda _: (ours,), want, dtype)
        assert result.status == "ok", (label, result.note)
        for op in for_family("attention"):
            if op.name in lane.EXCLUDED:
                continue
            try:
                inputs, params = lane.anchor_call(family, op, args)
            except NotImplementedError:
                continue
            prepared = op.prepare(*inputs, backend="emulator", **params)
            result = lane.run_checked(prepared.launch, lambda _: (prepared.out,), want, dtype, anchor=True)
            assert result.status == "ok", (label, op.name, result.note)
            ran.setdefault(label, []).append(op.name)
    assert ran == {"decode Sq4": ["mlx.sdpa_vector", "mlx.sdpa_vector_2pass", "torch.sdpa_vector",
                                  "torch.sdpa_vector_2pass"],
                   "decode Sq8": ["mlx.sdpa_vector", "mlx.sdpa_vector_2pass", "torch.sdpa_vector",
                                  "torch.sdpa_vector_2pass"],
                   "prefill additive mask": ["mlx.steel_attention", "torch.prefill_attention"],
                   "prefill D80": ["mlx.steel_attention", "torch.prefill_attention"],
                   "prefill D96": ["torch.prefill_attention"]}


def test_each_memory_bound_row_times_a_copy_of_its_bytes_once(lane, monkeypatch):
    timed = []
    monkeypatch.setattr(lane, "DEVICE", "cpu")
    monkeypatch.setattr(lane, "SAME_SIZE_COPY_US", {})
    monkeypatch.setattr(lane, "measure", lambda fn: (fn(), timed.append(1), (3.0, "stream"))[-1])
    monkeypatch.setattr(lane, "CHECK_ONLY", True)
    assert lane.same_size_copy_us(1 << 20) is None  # the warm-up pass times nothing
    monkeypatch.setattr(lane, "CHECK_ONLY", False)
    assert lane.same_size_copy_us(1 << 20) == 3.0 and lane.same_size_copy_us(1 << 20) == 3.0
    assert len(timed) == 1 and list(lane.SAME_SIZE_COPY_US) == [1 << 20]
