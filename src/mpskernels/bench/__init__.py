"""mpskernels bench: a KernelBench-format harness for Apple GPUs.

    report = run_bench(load_problems(["benches/problems"]), [optimize_candidate()], environment())

Each problem runs at sizes scaled to the device (`mpskernels.problem.scaled_sizes`), every candidate (optimize(),
kernel packs) is checked by the shared verifier, and on a Mac correct candidates are timed against the faster of
eager and torch.compile. Without an Apple GPU the kernels run on the MSL CPU emulator and nothing is timed.
Modules: machine (where it runs), candidates, runner, timing, results, summary, report (JSON, Markdown, PNG),
progress, command (the CLI).
"""

from .candidates import Candidate, compile_baseline, compile_candidate, optimize_candidate, pack_candidates
from .machine import BenchEnvironment, BenchSetupError, Machine, environment
from .results import BenchReport, CandidateResult, ProblemResult
from .runner import BenchOptions, run_bench, run_problem
from .summary import Summary, fast_p, geomean, summarize
from .timing import Timing, TimingOptions, time_interleaved

__all__ = [
    "BenchEnvironment", "BenchOptions", "BenchReport", "BenchSetupError", "Candidate", "CandidateResult", "Machine",
    "compile_baseline", "compile_candidate",
    "ProblemResult", "Summary", "Timing", "TimingOptions", "environment", "fast_p", "geomean", "optimize_candidate",
    "pack_candidates", "run_bench", "run_problem", "summarize", "time_interleaved",
]  # fmt: skip
