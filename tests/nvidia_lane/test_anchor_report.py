"""The anchor lane's report (no GPU): ratios and their direction, the best anchor, % of copy, JSON round trip and
what the Markdown states."""

import json

import re

import pytest

from mpskernels.cuda.anchor_report import (SPEEDUP_RULE, AnchorLaneReport, Result, Row, from_json, geomean,
                                           merge_reports, pct_copy, row_json, to_json, to_markdown)

GBPS = 4000.0
MIB = 2**20


def sample() -> AnchorLaneReport:
    rows = [
        Row("softmax", "bfloat16", "x 2048x32000", 256 * MIB, Result(100.0, 1e-3, kernels=("softmax_looped",)),
            {"mlx.softmax": Result(80.0, 2e-2, "wrong", "result 0: 12 of 100 elements outside atol"),
             "mlx.softmax precise=True": Result(150.0, 1e-3, kernels=("softmax_looped_bfloat16",)),
             "mlx.other": Result(None, None, "error", "prepare: MSLCompileError: x.h:3: no")},
            torch_native=Result(60.0, 4e-3, "loose", "native op; result 0: 2 elements outside"),
            torch_compile=Result(90.0, 1e-3)),
        Row("attention", "float16", "prefill causal S2048", None, Result(400.0, 1e-3),
            {"torch.sdpa_vector": Result(None, None, "n/a", "decode kernel; this case is prefill"),
             "torch.prefill_attention": Result(200.0, 2e-3)},
            torch_native=Result(50.0, 1e-3), torch_compile=Result(None, None, "n/a", "not compiled: budget spent")),
        Row("rms_norm", "float32", "x 8x4096", 2 * 8 * 4096 * 4, Result(None, 0.5, "wrong", "result 0: 9 elements"),
            torch_native=Result(5.0, 1e-7), fits_l2=True),
    ]
    return AnchorLaneReport({"GPU": "Test GPU", "mpskernels commit": "abc1234"}, GBPS, rows, ["rope float32: budget"])


def test_speedups_are_other_over_ours_so_above_one_means_ours_is_faster():
    j = row_json(sample().rows[0], GBPS)
    assert j["anchor"] == "mlx.softmax precise=True"  # the wrong (faster) one is never the comparison
    assert j["anchor_us"] == 150.0
    assert j["speedup_vs_anchor"] == pytest.approx(1.5)
    assert j["speedup_vs_torch"] == pytest.approx(0.6)  # the loose native op is still the faster baseline
    assert "above 1.0 means ours is faster" in SPEEDUP_RULE


def test_row_fields_issue_12_asks_for():
    j = row_json(sample().rows[1], GBPS)
    for key in ("family", "dtype", "case", "ours_us", "anchor", "anchor_us", "torch_native_us", "torch_compile_us",
                "pct_copy", "max_abs_error", "anchor_max_abs_error", "speedup_vs_anchor"):
        assert key in j
    assert j["pct_copy"] is None  # prefill attention is not memory-bound
    assert j["anchor"] == "torch.prefill_attention" and j["speedup_vs_anchor"] == pytest.approx(0.5)
    assert j["torch_compile_us"] is None and j["speedup_vs_torch"] == pytest.approx(0.125)


def test_our_wrong_result_has_no_time_and_no_ratio():
    j = row_json(sample().rows[2], GBPS)
    assert j["ours_us"] is None and j["ours_status"] == "wrong"
    assert j["speedup_vs_torch"] is None and j["pct_copy"] is None
    assert j["max_abs_error"] == 0.5
    assert j["anchor"] is None and j["anchor_us"] is None


def test_pct_copy():
    assert pct_copy(4000 * 10**3, 1.0, 4000.0) == pytest.approx(100.0)  # 4 MB in 1 µs at 4000 GB/s
    assert pct_copy(None, 1.0, 4000.0) is None
    assert pct_copy(10, None, 4000.0) is None
    assert row_json(sample().rows[0], GBPS)["pct_copy"] == pytest.approx(100 * 256 * MIB / 100e-6 / 4000e9)


def test_best_anchor_without_a_correct_one_names_the_failing_one():
    row = Row("silu", "float32", "x", 10, Result(1.0, 0.0),
              {"a": Result(None, None, "n/a", "no"), "b": Result(None, None, "error", "compile")})
    assert row.best_anchor()[0] == "b"
    j = row_json(row, GBPS)
    assert j["anchor_us"] is None and j["anchor_status"] == "error" and j["speedup_vs_anchor"] is None
    assert Row("silu", "float32", "x", 10, Result(1.0, 0.0)).best_anchor() == (None, None)


def test_json_round_trip_keeps_every_measurement():
    report = sample()
    data = json.loads(json.dumps(to_json(report)))
    assert set(data) >= {"machine", "rows"} and len(data["rows"]) == 3
    assert data["rows"][0]["anchors"]["mlx.softmax"]["status"] == "wrong"
    back = from_json(data)
    assert to_markdown(back) == to_markdown(report)
    assert back.rows[0].anchors["mlx.softmax precise=True"].kernels == ("softmax_looped_bfloat16",)


def test_markdown_states_machine_rule_meaning_and_every_problem():
    text = to_markdown(sample())
    assert "| GPU | Test GPU |" in text and "| mpskernels commit | abc1234 |" in text
    assert SPEEDUP_RULE in text
    assert "say nothing about an" in text  # what the timings mean for Apple GPUs
    assert "| softmax | bfloat16 | x 2048x32000 | 100.0 |" in text
    assert "60.0 †" in text  # a loose PyTorch baseline is marked
    assert "- softmax bfloat16 x 2048x32000: mlx.softmax: wrong: result 0: 12 of 100" in text
    assert "- softmax bfloat16 x 2048x32000: mlx.other: error: prepare: MSLCompileError" in text
    assert "- rms_norm float32 x 8x4096: ours: wrong: result 0: 9 elements" in text
    assert "torch native: loose" in text
    assert "decode kernel; this case is prefill" in text  # n/a entries are listed apart
    assert "x 8x4096 (L2)" in text
    assert "- rope float32: budget" in text


def test_family_summary_geomeans():
    text = to_markdown(sample())
    assert "| softmax | 1 | 1.50× | 1.50× | 0.60× | 0.60× |" in text
    # torch.compile timed softmax's one row; attention's was not compiled (budget): its torch ratio is the native op's
    assert re.search(r"\| softmax \|[^\n]*\| 1 of 1 \|\n", text)
    assert re.search(r"\| attention \|[^\n]*\| 0 of 1 \|\n", text)
    assert geomean([2.0, 0.5]) == pytest.approx(1.0)
    assert geomean([]) is None


def test_the_family_bandwidth_figure_leaves_out_cases_that_fit_l2():
    big = Row("silu", "float32", "x 4096x11008", 2 * 4096 * 11008 * 4, Result(100.0, 1e-7))
    small = Row("silu", "float32", "x 8x11008", 2 * 8 * 11008 * 4, Result(2.0, 1e-7), fits_l2=True)
    text = to_markdown(AnchorLaneReport({}, GBPS, [big, small], []))
    big_pct = pct_copy(big.bytes_moved, 100.0, GBPS)
    assert f"| silu | 2 | — | — | — | — | {big_pct:.0f}% | — | 0 |" in text  # not the 8-row case's latency-bound 4%


def test_a_row_is_also_set_against_a_copy_of_its_own_bytes():
    # An L2-resident 8-row case: 9% of the 1 GiB copy's bandwidth, but a copy of its 0.7 MB takes 1.5 us of its 2.
    small = Row("silu", "float32", "x 8x11008", 2 * 8 * 11008 * 4, Result(2.0, 1e-7), fits_l2=True,
                same_size_copy_us=1.5)
    slow = Row("silu", "float32", "x 4096x11008", 2 * 4096 * 11008 * 4, Result(None, 0.5, "wrong", "bad"),
               same_size_copy_us=90.0)
    report = AnchorLaneReport({}, GBPS, [small, slow], [])
    assert row_json(small, GBPS)["pct_same_size_copy"] == pytest.approx(75.0)
    assert row_json(slow, GBPS)["pct_same_size_copy"] is None  # a wrong result has no time to set against it
    text = to_markdown(report)
    assert "| silu | float32 | x 8x11008 (L2) | 2.0 | 9% | 75% |" in text
    assert re.search(r"\| silu \| 2 \|[^\n]*\| 75% \| 1 \|", text)  # the family's minimum, over every row
    assert from_json(to_json(report)).rows[0].same_size_copy_us == 1.5


def test_the_page_names_where_its_data_is():
    assert "the same data is in `docs/anchor-lane.json`" in to_markdown(sample())
    assert "the same data is in `docs/run-2.json`" in to_markdown(sample(), "docs/run-2.json")


def run_of(rows, copy_gbps, date, commit="abc1234", not_run=()):
    return AnchorLaneReport({"GPU": "Test GPU", "mpskernels commit": commit, "date (UTC)": date}, copy_gbps, rows,
                            list(not_run))


def test_merged_runs_replace_rows_and_keep_each_runs_copy_bandwidth():
    # Run 1 timed softmax and attention (the latter budget-cut to one case), run 2 attention again on its own.
    soft = Row("softmax", "float16", "x 2048x32000", 256 * MIB, Result(100.0, 1e-3))
    attn_old = Row("attention", "float16", "decode B1", 64 * MIB, Result(50.0, 1e-3))
    attn_new = Row("attention", "float16", "decode B1", 64 * MIB, Result(40.0, 1e-3))
    attn_more = Row("attention", "float16", "decode B1 Sq4", 64 * MIB, Result(45.0, 1e-3))
    soft32 = Row("softmax", "float32", "x 2048x32000", 512 * MIB, Result(200.0, 1e-6))
    first = run_of([soft, attn_old, soft32], 4000.0, "day 1", not_run=["attention float32: time budget spent"])
    second = run_of([attn_new, attn_more], 2000.0, "day 2")
    merged = from_json(to_json(merge_reports([first, second])))
    assert [(r.family, r.dtype, r.case) for r in merged.rows] == [
        ("softmax", "float16", "x 2048x32000"), ("attention", "float16", "decode B1"),
        ("attention", "float16", "decode B1 Sq4"), ("softmax", "float32", "x 2048x32000")]
    by_case = {(r.dtype, r.case): row_json(r, merged.copy_gbps) for r in merged.rows}
    assert by_case[("float16", "decode B1")]["ours_us"] == 40.0  # the later run's
    assert by_case[("float16", "decode B1")]["pct_copy"] == pytest.approx(pct_copy(64 * MIB, 40.0, 2000.0))
    assert by_case[("float16", "x 2048x32000")]["pct_copy"] == pytest.approx(pct_copy(256 * MIB, 100.0, 4000.0))
    assert merged.not_run == ["attention float32: time budget spent"]  # run 2 timed float16 only
    assert "day 1: 3 rows, copy 4000 GB/s; day 2: 2 rows, copy 2000 GB/s" in to_markdown(merged)


def test_runs_of_different_commits_or_gpus_are_not_merged():
    with pytest.raises(ValueError, match="mpskernels commit"):
        merge_reports([run_of([], 1.0, "a"), run_of([], 1.0, "b", commit="def5678")])
    other_gpu = run_of([], 1.0, "b")
    other_gpu.machine["GPU"] = "Other GPU"
    with pytest.raises(ValueError, match="GPU"):
        merge_reports([run_of([], 1.0, "a"), other_gpu])
