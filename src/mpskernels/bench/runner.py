"""Running problems: sizes, the device check, verification of every candidate, timing.

Per problem:
1. sizes: `scaled_sizes(problem, budget)` (the documented rule in mpskernels.problem); the sizes are recorded;
2. the reference runs once on the device: an op the device lacks skips the problem, with the reason;
3. every candidate that applies is verified by the shared verifier at those sizes (held-out sizes included);
4. on a Mac, eager, torch.compile and every correct candidate are timed together (interleaved). A wrong candidate
   is not timed: the baseline is its fallback. Without an Apple GPU nothing is timed and the report says why.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from ..problem import Problem, ProblemError, ProblemInstance, scaled_sizes
from ..verify import VerifyOptions, verify_problem
from ..verify import inputs as inp
from .candidates import (BASELINE, BASELINE_NAME, COMPILE, Candidate, compile_baseline, not_launched, rolled_back,
                         swapped_kernels)
from .machine import BenchEnvironment
from .progress import Progress, Quiet
from .results import (ERROR, KERNEL_VERIFIED, NOT_EXERCISED, OK, REVIEW_SPEEDUP, SKIPPED, WRONG, BenchReport,
                      CandidateResult,
                      ProblemResult)
from .timing import Timing, TimingOptions, time_interleaved

NOISY_SPREAD = 0.25  # an interquartile range above this share of the median is flagged


QUICK_DISTRIBUTIONS = ("as-given", "normal", "large")


@dataclass(frozen=True)
class BenchOptions:
    seeds: tuple[int, ...] = (0, 1, 2)
    distributions: tuple[str, ...] = inp.DISTRIBUTIONS
    held_out: bool = True
    sensitivity: bool = True
    dtype: torch.dtype | None = None  # None: the problem's own dtypes
    compile: bool = True  # torch.compile as part of the baseline (timed runs only)
    # verify torch.compile itself like a candidate (it is the baseline only when correct); None: where it is timed
    verify_compile: bool | None = None
    time_limit: float | None = None  # seconds per problem; a problem still running then is stopped and reported
    timing: TimingOptions = field(default_factory=TimingOptions)

    def verify_options(self, env: BenchEnvironment, candidate: Candidate) -> VerifyOptions:
        return VerifyOptions(seeds=self.seeds, distributions=self.distributions, dtype=self.dtype, device=env.device,
                             held_out=self.held_out, sensitivity=self.sensitivity,
                             require_kernel=candidate.require_kernel)

    def quick(self) -> BenchOptions:
        """The quick verification (`--quick`): the first seed, the quick distributions, no held-out sizes."""
        distributions = tuple(d for d in QUICK_DISTRIBUTIONS if d in self.distributions) or self.distributions[:1]
        return replace(self, seeds=self.seeds[:1], distributions=distributions, held_out=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dtype"] = str(self.dtype).removeprefix("torch.") if self.dtype else None
        return out


def run_bench(problems: list[Problem], candidates: list[Candidate], env: BenchEnvironment,
              options: BenchOptions = BenchOptions(), progress: Progress | None = None,
              previous: Mapping[str, ProblemResult] | None = None,
              on_result: Callable[[BenchReport], None] | None = None) -> BenchReport:
    """Runs every problem. `previous`: results of an earlier run of the same options by ProblemResult.key, reused
    instead of running those problems again (resuming a killed run). `on_result` is called with the report after
    every problem, so a run that is killed leaves what it had done (the command writes report.json there)."""
    progress = progress or Quiet()
    previous = previous or {}
    report = BenchReport(machine=env.machine.as_dict(),
                         options={**options.as_dict(), "max_elements": env.max_elements},
                         started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    names = {p.name for p in problems}
    for c in candidates:
        if c.problem_name == "":
            report.notes.append(f"{c.name} ({c.source}) names no problem, so it was run on none")
        elif c.problem_name is not None and c.problem_name not in names:
            report.notes.append(f"{c.name} ({c.source}) is for problem '{c.problem_name}', which is not among the "
                                "problems run")
    start = time.perf_counter()
    progress.start(len(problems))
    try:
        for problem in problems:
            key = str(problem.path) if problem.path else problem.name
            result = previous.get(key) or run_problem(problem, candidates, env, options, progress)
            report.problems.append(result)
            progress.done(result)
            report.seconds = time.perf_counter() - start
            if on_result is not None:
                on_result(report)
    finally:
        progress.close()
    report.seconds = time.perf_counter() - start
    report.complete = True
    return report


def run_problem(problem: Problem, candidates: list[Candidate], env: BenchEnvironment,
                options: BenchOptions = BenchOptions(), progress: Progress | None = None) -> ProblemResult:
    progress = progress or Quiet()
    start = time.perf_counter()
    result = ProblemResult(problem.name, problem.level, str(problem.path) if problem.path else None, OK)
    if problem.load_error:
        result.status, result.reason = ERROR, problem.load_error
        return result
    steps = _Steps(progress)
    try:
        with _time_limit(options.time_limit):
            _run(problem, candidates, env, options, steps, result)
    except ProblemTimeout:
        result.status = SKIPPED
        result.reason = (f"time limit: not finished within {options.time_limit:g} s (stopped while "
                         f"{steps.last or 'starting'}); the results before it are kept")
    except ProblemError as e:
        result.status, result.reason = ERROR, str(e)
    except Exception as e:  # noqa: BLE001 - one broken problem must not end the run; it is reported
        result.status, result.reason = ERROR, f"{type(e).__name__}: {e}"
    result.seconds = time.perf_counter() - start
    env.release_memory()
    return result


class ProblemTimeout(BaseException):
    """A problem ran past the time limit. A BaseException, so the problem's or the verifier's own `except
    Exception` cannot swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raises ProblemTimeout in this thread after `seconds` (SIGALRM; main thread only, elsewhere no limit). It
    interrupts Python code and sleeps; a single native call that never returns is stopped when it does."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ProblemTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Steps:
    """The progress display, remembering the last step (a time-out says where the problem was)."""

    def __init__(self, progress: Progress):
        self.progress, self.last = progress, ""

    def step(self, name: str, what: str) -> None:
        self.last = what
        self.progress.step(name, what)


def _run(problem: Problem, candidates: list[Candidate], env: BenchEnvironment, options: BenchOptions,
         progress: Progress, result: ProblemResult) -> None:
    progress.step(problem.name, "sizes")
    try:
        scaled, budget = _fitting_sizes(problem, env.max_elements)
    except ProblemError as e:
        result.status, result.reason = SKIPPED, f"does not fit the size budget: {e}"
        return
    progress.step(problem.name, f"reference on {env.device}")
    first = scaled
    scaled, instance, failure = _sizes_the_reference_runs_at(problem, scaled, env, options, budget)
    result.file_sizes = dict(problem.constants)
    if instance is not None:
        result.sizes, result.scaled = dict(instance.sizes), scaled
    if failure:
        result.status, result.reason = failure
        return
    notes = []
    if budget != env.max_elements:
        notes = [f"its smallest sizes need more than the budget of {env.max_elements:,} elements: ran within "
                 f"{budget:,}"]
    if scaled != first:
        notes = [f"the reference fails at {_describe(first)}; ran at the nearest larger sizes where it runs"]
    if budget > env.max_elements * BACKOFF_FACTOR:
        options = options.quick()  # so that the time limit covers a whole CNN at millions of elements
        notes.append("verified quick (one seed, three input distributions, no held-out sizes)")
    result.size_note = "; ".join(notes)
    mine = [c for c in candidates if c.applies_to(problem)]
    if options.compile and (env.can_time if options.verify_compile is None else options.verify_compile):
        mine.append(compile_baseline())
    for candidate in mine:
        progress.step(problem.name, f"verifying {candidate.name}")
        verified = _verify(problem, candidate, scaled, env, options)
        if verified.outcome == NOT_EXERCISED and scaled:
            progress.step(problem.name, f"verifying {candidate.name} at larger sizes")
            verified = _verify_where_the_kernels_run(problem, candidate, scaled, verified, env, options)
        result.candidates.append(verified)
    _blame_inductor(problem, result, scaled, env, options)
    if not env.can_time:
        result.timing_note = env.machine.timing
        return
    progress.step(problem.name, "timing")
    try:
        _time(instance, mine, result, env, options)
    except Exception as e:  # noqa: BLE001 - the verdicts stand; only the times are lost
        result.eager = result.compile = None
        for c in result.candidates:
            c.time = c.speedup = c.speedup_vs_eager = c.speedup_vs_compile = None
        result.timing_note = f"timing failed: {type(e).__name__}: {e}"


INDUCTOR_WRONG = ("torch.compile itself (Inductor, without mpskernels) fails the same check at these sizes: the "
                  "mismatch comes from Inductor's code for the ops around the kernels")


def _blame_inductor(problem: Problem, result: ProblemResult, sizes: dict, env: BenchEnvironment,
                    options: BenchOptions) -> None:
    """A wrong torch.compile(backend="mpskernels") is checked against plain torch.compile at the same sizes (verified
    already where it is timed): when that is wrong too, the compile candidate's verdict says so (KernelBench's
    level2/11 at fp32: Inductor's fused BatchNorm/tanh is 5e-4 off on one seed's large inputs, with or without our
    group_norm)."""
    wrong = [c for c in result.candidates if c.kind == COMPILE and c.outcome == WRONG]
    if not wrong:
        return
    baseline = next((c for c in result.candidates if c.kind == BASELINE), None)
    if baseline is None:
        baseline = _verify(problem, compile_baseline(), sizes, env, options)
    if baseline.outcome == WRONG:
        for c in wrong:
            c.flags.append(INDUCTOR_WRONG)


# How far the harness backs off toward the file's sizes when the reference fails at the scaled ones: budgets of up to
# this many times the run's budget (a dilated kernel wider than the scaled image, a size a model asserts on).
BACKOFF_FACTOR = 64
# How far beyond the budget a problem whose smallest sizes do not fit it may run (whole CNNs whose channels cannot
# shrink: VGG19 needs 141M elements at 224 x 224, 2150x the emulator's budget); beyond BACKOFF_FACTOR it is verified
# quick. On the emulator at these sizes a CNN's quick verification takes under a minute (ResNet18 at 11.5M: 22 s).
OVERSIZE_FACTOR = 4096
# The largest tensor a size retried for a kernel's sake may make the reference produce, in multiples of the run's
# budget. The budget counts inputs and parameters only; an upsampling layer (ConvTranspose3d) makes activations far
# larger, and the verifier holds several float64 copies of each: KernelBench's level2/49 at 64x the budget took
# 24 GB and the run was killed.
ACTIVATION_FACTOR = 16


def _fitting_sizes(problem: Problem, budget: int) -> tuple[dict, int]:
    """(sizes, budget): the scaled sizes within the budget; where the problem's smallest sizes do not fit it
    (channels and kernels that cannot shrink), within the smallest larger budget they fit, x4 at a time up to
    OVERSIZE_FACTOR times the budget (the time limit bounds what that costs). Raises ProblemError beyond that."""
    tried = budget
    while True:
        try:
            return scaled_sizes(problem, tried), tried
        except ProblemError:
            if tried * 4 > budget * OVERSIZE_FACTOR:
                raise
            tried *= 4


def _sizes_the_reference_runs_at(problem: Problem, scaled: dict, env: BenchEnvironment, options: BenchOptions,
                                 start_budget: int):
    """(sizes, instance, failure): the scaled sizes if the reference runs there; else the sizes of the smallest
    larger budget (x4 at a time, up to BACKOFF_FACTOR times the budget or the file's own sizes) where it does.
    failure is (status, reason) or None: an op the device lacks skips the problem; a reference that fails at the
    file's own sizes is the problem's error; one that fails at every size tried without reaching the file's is a
    limitation of the harness (the file's sizes were too large to try), never the problem's error."""
    first, budget, errors = scaled, start_budget, []
    while True:
        instance, error = None, None
        try:
            instance = problem.at(scaled)
            error = _reference_error(instance, env, options)
        except ProblemError as e:
            error = e
        if error is None:
            return scaled, instance, None
        if isinstance(error, NotImplementedError):
            return scaled, instance, (SKIPPED, f"the reference uses an op that {env.device} lacks: "
                                     f"{str(error).strip().splitlines()[0] if str(error).strip() else 'NotImplementedError'}")
        errors.append(f"{_describe(scaled)}: {_first(error)}")
        if not scaled:
            reason = f"the reference fails at the file's own sizes: {_first(error)}"
            return scaled, instance, (ERROR, reason if len(errors) == 1 else reason + f" (also at {errors[0]})")
        while not (budget > env.max_elements * BACKOFF_FACTOR):
            budget *= 4
            larger = scaled_sizes(problem, budget)
            if larger != scaled:
                scaled = larger
                break
        else:
            return scaled, instance, (SKIPPED, "harness limitation: the reference fails at every size up to "
                                     f"{BACKOFF_FACTOR}x the budget, and the file's sizes are too large to try "
                                     f"({'; '.join(errors[:2])})")


def _reference_error(instance: ProblemInstance, env: BenchEnvironment, options: BenchOptions) -> Exception | None:
    """The reference's failure at these sizes on the device, or None when it runs."""
    try:
        model = _on_device(instance.reference(), env, options)
        args = inp.cast(instance.inputs(0), options.dtype, env.device)
        with torch.inference_mode():
            model(*args)
    except Exception as e:  # noqa: BLE001 - the caller decides whose failure it is
        return e
    return None


def _largest_activation(instance: ProblemInstance, env: BenchEnvironment, options: BenchOptions) -> int | None:
    """Elements of the largest tensor any module of the reference returns at these sizes (its inputs included),
    or None when the reference fails there."""
    largest = 0

    def note(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal largest
        for t in inp.tensors(output):
            largest = max(largest, t.numel())

    try:
        model = _on_device(instance.reference(), env, options)
        args = inp.cast(instance.inputs(0), options.dtype, env.device)
        largest = max((t.numel() for t in inp.tensors(args)), default=0)
        handles = [m.register_forward_hook(note) for m in model.modules()]
        try:
            with torch.inference_mode():
                model(*args)
        finally:
            for h in handles:
                h.remove()
    except Exception:  # noqa: BLE001 - the reference does not run at these sizes
        return None
    return largest


def _first(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def _describe(sizes: dict) -> str:
    return "sizes " + ", ".join(f"{k}={v}" for k, v in sizes.items()) if sizes else "the file's sizes"


def _verify(problem: Problem, candidate: Candidate, sizes: dict[str, int], env: BenchEnvironment,
            options: BenchOptions) -> CandidateResult:
    candidate.built.clear()
    try:
        with env.kernels():
            verdict = verify_problem(problem, candidate.make, options.verify_options(env, candidate), sizes=sizes)
    except Exception as e:  # noqa: BLE001 - reported as this candidate's failure, not the run's
        error = f"the harness failed verifying it: {type(e).__name__}: {e}"
        return CandidateResult(candidate.name, candidate.kind, False, {"harness_error": error}, error)
    kernels = swapped_kernels(candidate)
    if candidate.kind == BASELINE or (candidate.kind == COMPILE and not verdict.launches):
        kernels = {}  # torch.compile itself, or a backend that rewrote nothing that launched: PyTorch's own code
    result = CandidateResult(candidate.name, candidate.kind, verdict.correct, verdict.as_dict(),
                             "" if verdict.correct else verdict.feedback(), kernels,
                             rolled_back(candidate))
    result.not_launched = not_launched(candidate)
    if candidate.stale_for(problem):
        result.flags.append("the pack was generated for another version of this problem file (source hash differs)")
    return result


def _verify_where_the_kernels_run(problem: Problem, candidate: Candidate, scaled: dict, first: CandidateResult,
                                  env: BenchEnvironment, options: BenchOptions) -> CandidateResult:
    """A candidate whose swapped kernels never launched at the run's sizes (their constraints sent every call to
    PyTorch: attention at a head dim it has no kernel for) is verified again at the sizes of larger budgets (x4 at
    a time, up to BACKOFF_FACTOR times the run's), which are closer to the file's, until its kernels launch. If
    they never do, the first result stands: "kernel not exercised at these sizes", never a verified kernel."""
    budget, sizes = env.max_elements, scaled
    while sizes and budget <= env.max_elements * BACKOFF_FACTOR // 4:
        budget *= 4
        try:
            larger = scaled_sizes(problem, budget)
        except ProblemError:  # the problem's smallest sizes need a larger budget still (see _fitting_sizes)
            continue
        if larger == sizes:
            continue
        sizes = larger
        largest = _largest_activation(problem.at(sizes), env, options)
        if largest is None:
            continue  # the reference fails at these sizes
        if largest > env.max_elements * ACTIVATION_FACTOR:
            break  # larger sizes only make it larger
        again = _verify(problem, candidate, sizes, env, options)
        if again.outcome != NOT_EXERCISED:
            again.flags.append(f"verified at {_describe(sizes)}: at the run's sizes ({_describe(scaled)}) no "
                               "swapped kernel launched (their constraints sent every call to PyTorch)")
            return again
    return first


def _on_device(model: nn.Module, env: BenchEnvironment, options: BenchOptions) -> nn.Module:
    model = model.to(env.device)
    return model.to(options.dtype) if options.dtype else model


def _time(instance: ProblemInstance, candidates: list[Candidate], result: ProblemResult, env: BenchEnvironment,
          options: BenchOptions) -> None:
    """Times eager, torch.compile and the correct candidates on the instance's first-seed inputs, interleaved."""
    reference = _on_device(instance.reference(), env, options)
    args = inp.cast(instance.inputs(0), options.dtype, env.device)
    models: dict[str, nn.Module | Callable] = {"eager": reference}
    verdicts = {c.name: c for c in result.candidates}
    checked = verdicts.get(BASELINE_NAME)
    if options.compile and checked is not None and not checked.correct:
        result.compile_note = ("torch.compile is not part of the baseline: its output failed the verifier: "
                               f"{(checked.feedback or 'incorrect').splitlines()[0]}")
    elif options.compile:
        compiled, note = _compiled(reference, args, env)
        result.compile_note = note
        if compiled is not None:
            models["compile"] = compiled
    else:
        result.compile_note = "not asked for (--no-compile)"
    for candidate in candidates:
        # a model left as PyTorch is the baseline itself: timing it would only measure noise
        # (and one verified only at other sizes, where its kernels launch, is not timed where they do not)
        verdict = verdicts[candidate.name]
        if verdict.outcome == KERNEL_VERIFIED and verdict.verdict.get("sizes", instance.sizes) == instance.sizes:
            with env.kernels():
                model = candidate.make(copy.deepcopy(reference), instance.init_inputs())
            models[candidate.name] = model.to(env.device).eval()
    calls = {name: (lambda m=m: m(*args)) for name, m in models.items()}
    with torch.inference_mode(), env.kernels():
        times = time_interleaved(calls, env.synchronize, options.timing)
    result.eager, result.compile = times["eager"], times.get("compile")
    moved = _bytes_moved(reference, args)
    for c in result.candidates:
        if c.name in times:
            _record_speedup(c, times[c.name], result, moved, env)


def _compiled(reference: nn.Module, args: list[Any], env: BenchEnvironment) -> tuple[nn.Module | None, str]:
    """torch.compile of the reference, or None and why it cannot be part of the baseline."""
    try:
        compiled = torch.compile(copy.deepcopy(reference))
        with torch.inference_mode():
            compiled(*args)
        env.synchronize()
    except Exception as e:  # noqa: BLE001 - compile failing only removes it from the baseline
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return None, f"torch.compile failed: {type(e).__name__}: {first}"
    return compiled, ""


def _record_speedup(c: CandidateResult, timing: Timing, result: ProblemResult, moved: int,
                    env: BenchEnvironment) -> None:
    c.time = timing
    c.speedup_vs_eager = result.eager.median_ms / timing.median_ms
    if result.compile is not None:
        c.speedup_vs_compile = result.compile.median_ms / timing.median_ms
    c.speedup = result.baseline.median_ms / timing.median_ms
    c.flags += timing_flags(c.speedup, timing, moved, env.machine.bandwidth_gbps)


def timing_flags(speedup: float, timing: Timing, moved_bytes: int, bandwidth_gbps: float | None) -> list[str]:
    """Reasons a measured number needs a person: a speedup too good to trust, a time under the memory roofline,
    a noisy measurement."""
    flags = []
    if speedup > REVIEW_SPEEDUP:
        flags.append(f"speedup above {REVIEW_SPEEDUP:g}x: review it (removed work and other cheats look like this)")
    if bandwidth_gbps:
        floor_ms = moved_bytes / (bandwidth_gbps * 1e9) * 1e3
        if timing.median_ms < floor_ms:
            flags.append(f"faster than memory bandwidth allows: {moved_bytes / 1e6:.3g} MB must be read and written, "
                         f"at least {floor_ms:.3g} ms at {bandwidth_gbps:g} GB/s")
    if timing.spread > NOISY_SPREAD:
        flags.append(f"noisy: interquartile range {timing.spread:.0%} of the median")
    return flags


def _bytes_moved(reference: nn.Module, args: list[Any]) -> int:
    """A lower bound on memory traffic: every input and parameter read once, every output written once."""
    with torch.inference_mode():
        out = reference(*args)
    tensors = inp.tensors(args) + inp.tensors(out) + list(reference.state_dict().values())
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
