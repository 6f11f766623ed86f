"""What the harness measures against the baseline: `optimize(model)` and kernel packs.

A Candidate pairs a CandidateFactory (the verifier's contract: reference with the harness's weights and the
problem's init inputs -> the candidate module) with the verification it gets: kernel packs must launch their kernels
and must not compute with the PyTorch ops they replace; optimize() may leave modules it does not swap to PyTorch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..optimize import FIRST_CALL, optimize
from ..problem import Problem
from ..verify import CandidateFactory
from .machine import BenchSetupError

# kinds: optimize(); a kernel pack; torch.compile with the mpskernels backend; torch.compile itself (the baseline,
# verified like the candidates so that a wrong compiled model is never the baseline)
OPTIMIZE, PACK, COMPILE, BASELINE = "optimize", "pack", "compile", "baseline"
COMPILE_NAME, BASELINE_NAME = "torch.compile(mpskernels)", "torch.compile"


@dataclass
class Candidate:
    name: str  # "optimize", or "pack:<folder name>"
    kind: str  # OPTIMIZE or PACK
    factory: CandidateFactory
    require_kernel: bool
    problem_name: str | None = None  # a pack applies to this problem only ("": to none); None: every problem
    problem_sha256: str = ""  # a pack's record of the problem source it was generated for
    source: str | None = None  # where it came from (a pack's folder)
    built: list[nn.Module] = field(default_factory=list)  # the modules the factory made, newest last

    def applies_to(self, problem: Problem) -> bool:
        return self.problem_name is None or self.problem_name == problem.name

    def stale_for(self, problem: Problem) -> bool:
        """Whether a pack was generated for another version of this problem's file."""
        return bool(self.problem_sha256) and self.problem_sha256 != hashlib.sha256(problem.source.encode()).hexdigest()

    def make(self, reference: nn.Module, init_inputs: list) -> nn.Module:
        """The factory, remembering what it built (the harness reads optimize()'s report from it)."""
        model = self.factory(reference, init_inputs)
        self.built.append(model)
        return model


def optimize_candidate() -> Candidate:
    """optimize(model) as a user calls it; it checks its swaps on the model's first call (example_inputs=
    "first_call"), since the verifier calls the model at several sizes."""

    def make(reference: nn.Module, init_inputs: list) -> nn.Module:
        return optimize(reference, example_inputs=FIRST_CALL)

    return Candidate(OPTIMIZE, OPTIMIZE, make, require_kernel=False)


def compile_candidate() -> Candidate:
    """`torch.compile(model, backend="mpskernels")`: the backend rewrites the computations it has kernels for and
    leaves the rest to Inductor. It may rewrite nothing, so it is verified like optimize() (PyTorch ops allowed);
    whether a kernel ran is read from the verifier's launch count."""

    def make(reference: nn.Module, init_inputs: list) -> nn.Module:
        from .. import compile as _backend  # noqa: F401 - registers the "mpskernels" backend

        return torch.compile(reference, backend="mpskernels")

    return Candidate(COMPILE_NAME, COMPILE, make, require_kernel=False)


def compile_baseline() -> Candidate:
    """torch.compile itself (Inductor), verified with the same verifier before it may be the baseline."""

    def make(reference: nn.Module, init_inputs: list) -> nn.Module:
        return torch.compile(reference)

    return Candidate(BASELINE_NAME, BASELINE, make, require_kernel=False)


def pack_candidates(folders: list[str | Path], loader: Callable | None = None) -> list[Candidate]:
    """One candidate per kernel pack folder; `loader` defaults to mpskernels.packs.load_pack."""
    if not folders:
        return []
    if loader is None:
        try:
            from ..packs import load_pack as loader
        except ImportError as e:
            raise BenchSetupError(f"--pack needs mpskernels.packs, which this installation lacks ({e})") from None
    out, names = [], set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise BenchSetupError(f"--pack {folder}: no such folder")
        try:
            pack = loader(folder)
        except Exception as e:  # noqa: BLE001 - any failure to load is the pack's, reported with its folder
            raise BenchSetupError(f"--pack {folder}: the pack does not load: {type(e).__name__}: {e}") from e
        name = f"pack:{folder.name}"
        if name in names:
            raise BenchSetupError(f"--pack {folder}: two packs share the folder name {folder.name!r}")
        names.add(name)
        out.append(Candidate(name, PACK, pack.make_candidate, require_kernel=True,
                             problem_name=pack.problem_name or "", problem_sha256=pack.problem_sha256 or "",
                             source=str(folder)))
    return out


def rolled_back(candidate: Candidate) -> list[str]:
    """For optimize(): the modules whose swap its checks rolled back ("module (kernel)"), from the same report as
    swapped_kernels. Empty for other candidates."""
    if candidate.kind != OPTIMIZE or not candidate.built:
        return []
    report = getattr(candidate.built[0], "mpskernels_report", None)
    return [f"{e.module or 'the model'} ({e.kernel})" for e in report.rolled_back] if report is not None else []


# optimize()'s report marks a routed block (attention inside a module's forward) whose calls on the first call
# could not be routed with this phrase; the reasons that follow are the kernel's constraints at those inputs (a head
# dim it has no kernel for, no keys, sizes past 32-bit strides), which depend on the sizes.
_NOT_ROUTED = "no call on the example inputs could be routed"


def not_launched(candidate: Candidate) -> list[str]:
    """For optimize(): the swaps its first call found but kept as PyTorch because the kernel did not launch at
    these sizes ("module: why"): swaps reported as not launched (the kernel's constraints sent the call to
    PyTorch), and routed blocks none of whose calls could be routed. Empty for other candidates."""
    if candidate.kind != OPTIMIZE or not candidate.built:
        return []
    report = getattr(candidate.built[0], "mpskernels_report", None)
    if report is None:
        return []
    entries = report.not_launched + [e for e in report.skipped if _NOT_ROUTED in e.detail]
    return [f"{e.module or 'the model'}: {e.detail.strip()[:300]}" for e in entries]


def swapped_kernels(candidate: Candidate) -> dict[str, int] | None:
    """For optimize(): kernel -> modules swapped, from the report of the first model it built (the one verified at
    the run's sizes). None for other candidates."""
    if candidate.kind != OPTIMIZE or not candidate.built:
        return None
    report = getattr(candidate.built[0], "mpskernels_report", None)
    return report.counts() if report is not None else None
