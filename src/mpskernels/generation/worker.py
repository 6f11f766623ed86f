"""Verifying one candidate in a separate process, under a time and memory limit.

Candidate code never runs in the caller's process: on Linux the emulator compiles the candidate's Metal into a
native library, and a kernel may hang or crash. The child is a fresh interpreter (`python -m
mpskernels.generation.worker`); it gets plain data (problem source, Metal source, declaration JSON, options) and
sends back plain data as JSON (which stage failed and why, the verdict, the timings).
In the child every emulated dispatch runs with bounds checking and shuffled lane order, so out-of-bounds accesses
and missing barriers fail the candidate instead of passing by luck.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

STAGES = ("declaration", "source", "compile", "verification", "timeout", "crash", "ok")


@dataclass(frozen=True)
class VerifyRequest:
    problem_source: str
    problem_name: str
    module_class: str
    source: str  # Metal
    declaration: Any  # parsed JSON
    sizes: dict[str, int] = field(default_factory=dict)
    options: Any = None  # VerifyOptions (None: the defaults)
    backend: str = "emulator"  # or "metal" on a Mac
    time_it: bool = False  # on a Mac: time the candidate against the faster of eager and torch.compile


@dataclass(frozen=True)
class VerifyOutcome:
    stage: str  # one of STAGES; "ok" when the candidate passed every check
    detail: str = ""  # what failed, as feedback text
    verdict: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None  # {"candidate_ms", "eager_ms", "compile_ms", "baseline_ms", "speedup"}

    @property
    def correct(self) -> bool:
        return self.stage == "ok"


def verify_in_subprocess(request: VerifyRequest, timeout_s: float = 300.0,
                         memory_limit_bytes: int | None = 16 << 30) -> VerifyOutcome:
    """Runs run_checks(request) in `python -m mpskernels.generation.worker` (a fresh interpreter that imports
    nothing of the caller's scripts), killed after `timeout_s`, its address space limited to memory_limit_bytes."""
    with tempfile.TemporaryDirectory(prefix="mpskernels-verify-") as folder:
        request_file, outcome_file = Path(folder) / "request.pickle", Path(folder) / "outcome.json"
        request_file.write_bytes(pickle.dumps(request))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "MPSKERNELS_EMULATOR_BOUNDS": "1", "MPSKERNELS_EMULATOR_ORDER": "shuffled"}
        command = [sys.executable, "-m", "mpskernels.generation.worker", str(request_file), str(outcome_file),
                   str(memory_limit_bytes or 0)]
        try:
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return VerifyOutcome("timeout", f"verification did not finish within {timeout_s:.0f} s; the kernel may "
                                            "hang (a loop that never ends) or be far too slow")
        if outcome_file.exists():
            return _read_outcome(outcome_file)
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return VerifyOutcome("crash", f"the verification process died (exit code {proc.returncode}); the kernel may "
                                      f"have crashed the emulator or run out of memory\n{tail}".rstrip())


def _main(argv: list[str]) -> int:
    request_file, outcome_file, memory_limit = Path(argv[0]), Path(argv[1]), int(argv[2])
    if memory_limit:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (ImportError, ValueError, OSError):
            pass  # no such limit on this platform: the timeout still applies
    request = pickle.loads(request_file.read_bytes())
    try:
        outcome = run_checks(request)
    except BaseException as e:  # noqa: BLE001 - anything is an outcome to report, never a lost answer
        outcome = VerifyOutcome("crash", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
    partial = outcome_file.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(outcome), default=str))
    os.replace(partial, outcome_file)
    return 0


def _read_outcome(path: Path) -> VerifyOutcome:
    """The child's answer. JSON, not pickle: the child ran candidate code, so what it wrote is not trusted."""
    try:
        data = json.loads(path.read_text())
        return VerifyOutcome(str(data["stage"]), str(data["detail"]), data.get("verdict"), data.get("timing"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return VerifyOutcome("crash", f"the verification process wrote an unreadable answer ({e})")


def run_checks(request: VerifyRequest) -> VerifyOutcome:
    """Every check on one candidate, in the current process (the child calls this; tests may too)."""
    import torch

    from ..msl import MSLError, preprocess_source
    from ..packs import DeclarationError, KernelPack, SourceError, check_pack_source, parse_declaration
    from ..problem import parse_problem
    from ..runtime import use_backend
    from ..verify import VerifyOptions, verify_problem

    try:
        declaration = parse_declaration(request.declaration)
    except DeclarationError as e:
        return VerifyOutcome("declaration", str(e))
    try:
        check_pack_source(request.source)
        check_pack_source(preprocess_source(request.source, "kernel.metal"), "kernel.metal (after #define)")
    except SourceError as e:
        return VerifyOutcome("source", str(e))
    except MSLError as e:
        return VerifyOutcome("compile", str(e))

    problem = parse_problem(request.problem_source, name=request.problem_name)
    with tempfile.TemporaryDirectory(prefix="mpskernels-candidate-") as folder:
        pack = KernelPack(request.problem_name, request.source, declaration, request.module_class,
                          request.problem_name).save(folder)
        missing = _missing_kernels(pack, request.backend)
        if missing:
            return VerifyOutcome("compile", missing)
        if request.backend == "emulator":
            mixed = _address_space_errors(pack)
            if mixed:
                return VerifyOutcome("compile", mixed)
        options = request.options or VerifyOptions()
        with use_backend(request.backend):
            verdict = verify_problem(problem, pack.make_candidate, options, sizes=request.sizes or None)
            if not verdict.correct:
                return VerifyOutcome("verification", verdict.feedback(), verdict.as_dict())
            record = {**verdict.as_dict(), "dtypes": {"as given": verdict.as_dict()}}
            # Every other dtype the declaration claims is verified too (one seed): a pack runs on what it claims.
            for name in declaration.dtypes:
                dtype = getattr(torch, name)
                if dtype == _problem_dtype(problem, request.sizes):
                    continue
                other = verify_problem(problem, pack.make_candidate, replace(options, dtype=dtype,
                                                                             seeds=options.seeds[:1]),
                                       sizes=request.sizes or None)
                record["dtypes"][name] = other.as_dict()
                if not other.correct:
                    return VerifyOutcome("verification", f"in {name} (the declaration lists it):\n"
                                                         f"{other.feedback()}", record)
        timing = time_candidate(problem, pack, request.sizes) if request.time_it else None
        return VerifyOutcome("ok", verdict.feedback(), record, timing)


def _problem_dtype(problem, sizes):
    """The floating-point dtype of the problem's own inputs (what the first verification ran in)."""
    import torch

    inputs = problem.at(sizes or None).inputs(0)
    return next((t.dtype for t in inputs if isinstance(t, torch.Tensor) and t.is_floating_point()), torch.float32)


def _missing_kernels(pack, backend: str) -> str:
    """Compiles the source and checks that every launched host name exists (for each declared dtype)."""
    from ..msl import MSLError

    try:
        if backend == "emulator":
            from ..emulator import compile_file

            defined = set(compile_file(pack.source_path).kernels)
        else:
            import torch

            library = torch.mps.compile_shader(pack.source)
            defined = {name for launch in pack.declaration.launches for d in pack.declaration.dtypes
                       if hasattr(library, name := launch.kernel.replace("{dtype}", d))}
    except (MSLError, SyntaxError) as e:  # torch.mps.compile_shader reports Metal compiler errors as SyntaxError
        return _compiler_text(str(e), pack)
    wanted = [launch.kernel.replace("{dtype}", d) for launch in pack.declaration.launches
              for d in pack.declaration.dtypes]
    absent = sorted({k for k in wanted if k not in defined})
    if absent:
        return (f"the declaration launches {', '.join(absent)}, which the source does not define (host names "
                f"defined: {', '.join(sorted(defined)) or 'none'}); instantiate every kernel for every declared dtype")
    return ""


def _address_space_errors(pack) -> str:
    """Off a Mac the emulator's g++ erases address spaces; clang, where installed, catches the device/threadgroup/
    thread mix-ups and writes through constant that Apple's compiler would reject."""
    from ..msl import MSLError
    from ..msl.address_spaces import check_address_spaces_source, clang

    if clang() is None:
        return ""
    try:
        check_address_spaces_source(pack.source, "kernel.metal")
    except MSLError as e:
        return "Apple's compiler would reject this (address spaces):\n" + _compiler_text(str(e), pack)
    return ""


def _compiler_text(text: str, pack, max_lines: int = 40) -> str:
    """Compiler output naming `kernel.metal` (not the temporary folder), cut to its first lines."""
    lines = text.replace(str(pack.source_path), "kernel.metal").splitlines()
    cut = f"\n... ({len(lines) - max_lines} more lines)" if len(lines) > max_lines else ""
    return "\n".join(lines[:max_lines]) + cut


def time_candidate(problem, pack, sizes=None, device: str = "mps", synchronize=None, options=None,
                   compile_baseline: bool = True) -> dict[str, Any]:
    """The candidate against eager (and torch.compile) at `sizes` (default: the problem's own), interleaved by
    the timing rules (bench/timing.py). On a Mac: device "mps", synchronize torch.mps.synchronize. Returns
    {"eager_ms", "compile_ms"?, "candidate_ms", "baseline_ms", "speedup"}, the baseline being the faster of the two."""
    import torch

    from ..bench.timing import TimingOptions, time_interleaved

    instance = problem.at(sizes or None)
    reference = instance.reference().to(device)
    inputs = [t.to(device) if isinstance(t, torch.Tensor) else t for t in instance.inputs(0)]
    candidate = pack.make_candidate(reference, instance.init_inputs())
    variants = {"eager": lambda: reference(*inputs), "candidate": lambda: candidate(*inputs)}
    if compile_baseline:
        try:
            compiled = torch.compile(reference)
            compiled(*inputs)
            variants["compile"] = lambda: compiled(*inputs)
        except Exception:  # noqa: BLE001 - torch.compile on MPS does not cover every module; eager is the baseline
            pass
    with torch.inference_mode():
        timings = time_interleaved(variants, synchronize or torch.mps.synchronize, options or TimingOptions())
    baseline = min(t.median_ms for name, t in timings.items() if name != "candidate")
    result = {f"{name}_ms": t.median_ms for name, t in timings.items()}
    result.update(baseline_ms=baseline, speedup=baseline / timings["candidate"].median_ms)
    return result


if __name__ == "__main__":
    from mpskernels.generation import worker  # so what this process builds belongs to the importable module

    sys.exit(worker._main(sys.argv[1:]))
