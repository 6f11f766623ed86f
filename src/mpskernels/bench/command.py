"""`mpskernels bench PATH...`: the command line of the harness.

Exit status: 0 when the run finished (a wrong candidate is a result, not a failure); 1 with --strict when a
candidate was wrong or a problem failed; 2 for bad arguments (a path that is not there, a file that is not a
KernelBench problem, a device this machine lacks, a pack that does not load).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..problem import ProblemError, load_problems
from .candidates import compile_candidate, optimize_candidate, pack_candidates
from .machine import BenchSetupError, environment
from .progress import choose
from .report import header, summary_table, write_json, write_markdown, write_png
from .results import ERROR, OK, SCHEMA, ProblemResult
from .runner import QUICK_DISTRIBUTIONS, BenchOptions
from .timing import TimingOptions

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run KernelBench-format problems: correctness (and speed on a Mac) of "
                                     "optimize() and kernel packs against eager and torch.compile",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="problem files or folders (searched recursively)")
    p.add_argument("--pack", action="append", default=[], metavar="DIR",
                   help="a kernel pack folder; applies to the problem of its name (repeatable)")
    p.add_argument("--no-optimize", action="store_true", help="do not run optimize(model)")
    p.add_argument("--out", default="bench-report", metavar="DIR",
                   help="folder for report.json, report.md and speedups.png (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "mps", "cpu"),
                   help="auto: the Apple GPU when there is one, else the CPU emulator (no timing)")
    p.add_argument("--max-elements", type=int, metavar="N",
                   help="scale each problem to at most N input + parameter elements (default: 65536 on the "
                        "emulator, GPU memory / 64 bytes on a Mac)")
    p.add_argument("-k", "--filter", metavar="TEXT", help="only problems whose name contains TEXT")
    p.add_argument("--level", type=int, action="append", metavar="N", help="only problems of level N (repeatable)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N problems")
    p.add_argument("--dtype", choices=tuple(DTYPES), help="cast weights and inputs (default: the problem's)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="verification seeds (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help=f"one seed, inputs {', '.join(QUICK_DISTRIBUTIONS)} only, no held-out sizes")
    p.add_argument("--no-held-out", action="store_true", help="skip the held-out sizes")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out: of the baseline, and as a candidate "
                   "(torch.compile(backend=\"mpskernels\"))")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed calls first (default: %(default)s)")
    p.add_argument("--runs", type=int, default=10, metavar="N", help="timed calls, at least (default: %(default)s)")
    p.add_argument("--time-budget", type=float, default=2.0, metavar="S",
                   help="seconds of timed calls per problem, after the minimum runs (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=900.0, metavar="S",
                   help="stop a problem still running after S seconds and report it (default: %(default)s; 0: none)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the results in --out's report.json (written after every problem, so a killed run "
                        "leaves one) and run only the problems it lacks")
    p.add_argument("--no-plot", action="store_true", help="do not write speedups.png")
    p.add_argument("--strict", action="store_true", help="exit 1 when a candidate is wrong or a problem fails")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=main)


def options_from(args: argparse.Namespace) -> BenchOptions:
    if args.seeds < 1:
        raise BenchSetupError("--seeds must be at least 1")
    options = BenchOptions(
        seeds=tuple(range(args.seeds)),
        held_out=not args.no_held_out,
        dtype=DTYPES[args.dtype] if args.dtype else None,
        compile=not args.no_compile,
        time_limit=args.time_limit or None,
        timing=TimingOptions(warmup=args.warmup, min_runs=args.runs, max_runs=max(args.runs, 200),
                             budget_s=args.time_budget),
    )
    return options.quick() if args.quick else options


def main(args: argparse.Namespace) -> int:
    from .runner import run_bench

    try:
        options = options_from(args)
        problems = _select(load_problems(args.paths), args)
        env = environment(args.device, args.max_elements)
        candidates = ([] if args.no_optimize else [optimize_candidate()]) + pack_candidates(args.pack) + \
            ([] if args.no_compile else [compile_candidate()])
        previous = _previous_results(Path(args.out) / "report.json", options, env) if args.resume else {}
    except (ProblemError, BenchSetupError, ValueError) as e:
        print(f"mpskernels bench: error: {e}", file=sys.stderr)
        return 2
    if not problems:
        print(f"mpskernels bench: error: no KernelBench problems (files defining Model, get_inputs and "
              f"get_init_inputs) found in {', '.join(args.paths)}" + (" after filtering" if _filtered(args) else ""),
              file=sys.stderr)
        return 2
    if not candidates:
        print("mpskernels bench: error: nothing to measure: --no-optimize and no --pack", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run_bench(problems, candidates, env, options, choose(args.quiet), previous,
                       on_result=lambda partial: _write_atomically(partial, out / "report.json"))
    written = [write_json(report, out / "report.json"), write_markdown(report, out / "report.md")]
    if not args.no_plot:
        try:
            written.append(write_png(report, out / "speedups.png"))
        except ImportError:
            print("mpskernels bench: no plot: matplotlib is not installed (pip install 'mpskernels[bench]')",
                  file=sys.stderr)
    print("\n".join(header(report) + [""] + summary_table(report)))
    print("\nwrote " + ", ".join(map(str, written)))
    failed = report.count(ERROR) or any(not c.correct for r in report.problems if r.status == OK
                                        for c in r.candidates)
    return 1 if args.strict and failed else 0


def _write_atomically(report, path: Path) -> None:
    """report.json as it stands, replaced in one step: a run killed while writing leaves the previous one."""
    partial = path.with_suffix(".json.partial")
    write_json(report, partial)
    partial.replace(path)


def _previous_results(path: Path, options: BenchOptions, env) -> dict[str, ProblemResult]:
    """The results of an earlier run to resume, by problem; refuses a report made with other options (its
    verdicts would not be this run's)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchSetupError(f"--resume: cannot read {path}: {e}") from None
    if data.get("schema") != SCHEMA:
        raise BenchSetupError(f"--resume: {path} is not a report of this version ({data.get('schema')})")
    mine = json.loads(json.dumps({**options.as_dict(), "max_elements": env.max_elements}))
    if data.get("options") != mine:
        changed = sorted(k for k in set(mine) | set(data.get("options", {}))
                         if mine.get(k) != data.get("options", {}).get(k))
        raise BenchSetupError(f"--resume: {path} was made with other options ({', '.join(changed)}); "
                              "run without --resume or with the same options")
    results = [ProblemResult.from_dict(p) for p in data.get("problems", [])]
    return {r.key: r for r in results}


def _filtered(args: argparse.Namespace) -> bool:
    return bool(args.filter or args.level or args.limit)


def _select(problems, args: argparse.Namespace):
    if args.filter:
        problems = [p for p in problems if args.filter.lower() in p.name.lower()]
    if args.level:
        problems = [p for p in problems if p.level in args.level]
    if args.limit is not None:
        problems = problems[:args.limit]
    return problems
