"""The NVIDIA lane's report: Markdown from results, JSON round trip, merging runs."""

from mpskernels.cuda.report import CAVEATS, Check, LaneReport, SanitizerRun, Timing, from_json, merge, to_json, \
    to_markdown


def sample() -> LaneReport:
    return LaneReport(
        environment={"GPU": "Test GPU"},
        copy_gbps=4000.0,
        checks=[Check("rms_norm", "float32", "example 0", True, "ok: max abs 1e-07"),
                Check("rms_norm", "float16", "large: x 4096x4096", True, "ok: max abs 0.002"),
                Check("softmax", "float32", "example 1", False, "MISMATCH: max abs 0.5")],
        timings=[Timing("rms_norm", "float32", "x 4096x4096", kernel_us=100.0, reference_us=150.0,
                        bytes_moved=128 * 2**20),
                 Timing("attention", "float32", "prefill", kernel_us=5000.0, reference_us=2500.0, bytes_moved=None)],
        sanitizer=[SanitizerRun("rms_norm.metal", "racecheck", True, 12.0, "0 hazards"),
                   SanitizerRun("control:missing-barrier", "racecheck", True, 9.0, "2 hazards", control=True),
                   SanitizerRun("softmax.metal", "memcheck", None, 240.0, "timed out after 240 s")],
        not_run=["something: why"],
    )


def test_markdown_states_results_failures_and_caveats():
    text = to_markdown(sample())
    assert CAVEATS.splitlines()[0] in text
    assert "- correctness: 2 of 3 cases pass (2 families" in text
    assert "- compute-sanitizer: 1 of 2 runs clean; 1 of 1 deliberately broken controls caught" in text
    assert "| softmax | 1 | 0 | float32 example 1: MISMATCH: max abs 0.5 |" in text
    assert "- softmax float32 example 1: MISMATCH: max abs 0.5" in text
    assert "| rms_norm | float32 | x 4096x4096 | 100.0 | 1342 | 34 | 150.0 | 1.50× |" in text
    assert "| attention | float32 | prefill | 5000.0 | — | — | 2500.0 | 0.50× |" in text
    assert "| control:missing-barrier | racecheck | caught (control) |" in text
    assert "| softmax.metal | memcheck | not finished |" in text
    assert "- not run: something: why" in text
    assert "| rms_norm | float16 | large: x 4096x4096 | ok: max abs 0.002 |" in text


def test_json_round_trip_and_merge_keep_every_result():
    report = sample()
    assert to_markdown(from_json(to_json(report))) == to_markdown(report)
    numerics = LaneReport(environment={"GPU": "Test GPU", "lane wall time": "50 s"}, copy_gbps=4000.0,
                          checks=report.checks, not_run=["compute-sanitizer (--no-sanitizer)"])
    sanitizer = LaneReport(environment={"lane wall time": "60 s"}, copy_gbps=4100.0, sanitizer=report.sanitizer)
    merged = merge([numerics, sanitizer])
    assert merged.checks == report.checks and merged.sanitizer == report.sanitizer
    assert merged.copy_gbps == 4000.0 and merged.not_run == []
    assert merged.environment["lane wall time (run 2)"] == "60 s"
