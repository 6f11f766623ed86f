"""Stage 2, confirm by probing: a module recognised by its computation keeps a proposal only if its own forward and
the kernel agree on probe inputs of several shapes and distributions. The first proposal that the config allows and
that passes wins; a module replaced with a forward that no longer calls its children takes its subtree with it."""

from __future__ import annotations

import torch
from torch import nn

from .compare import agree
from .config import OptimizeConfig
from .install import unsupported_tensors
from .matchers import Replacement
from .plan import Candidate, Swap
from .report import NOT_RECOGNISED, SKIPPED, Report, ReportEntry

PROBE_SEEDS = (0, 1)


def probe_inputs(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """Inputs of several distributions, as the verification rules ask: normal, uniform, large, negative, tiny."""
    out = []
    for seed in PROBE_SEEDS:
        g = torch.Generator().manual_seed(seed)
        base = torch.randn(shape, generator=g)
        out += [base, torch.rand(shape, generator=g), base * 100, -base.abs() - 0.1, base * 1e-3]
    return [t.to(device=device, dtype=dtype) for t in out]


def module_dtype_device(module: nn.Module, default: torch.device) -> tuple[torch.dtype, torch.device]:
    for p in module.parameters(recurse=False):
        return p.dtype, p.device
    return torch.float32, default


@torch.no_grad()
def confirm_by_probing(module: nn.Module, replacement: Replacement, device: torch.device,
                       scale: float) -> tuple[bool, str]:
    dtype, device = module_dtype_device(module, device)
    unsupported = unsupported_tensors([module], (), {})
    if unsupported:
        return False, f"its parameters are {unsupported}"
    for shape in replacement.probe_shapes(module):
        for x in probe_inputs(shape, dtype, device):
            try:
                want = module.forward(x.clone())
            except Exception as e:  # the module does not take a lone tensor of this shape
                return False, f"forward failed on a probe input ({type(e).__name__})"
            try:
                got = replacement.forward(x.clone())
            except Exception as e:  # reported as a mismatch: the kernel does not compute this module
                return False, f"the kernel failed on a probe input ({type(e).__name__}: {e})"
            ok, detail, _ = agree(got, want, scale)
            if not ok:
                return False, detail
    return True, "agrees on probe inputs"


def confirm(found: list[Candidate], config: OptimizeConfig, device: torch.device, report: Report) -> list[Swap]:
    """One swap per module whose proposal survives the config and probing; the others reported as skipped."""
    chosen: list[Swap] = []
    replaced_subtrees: list[str] = []  # modules whose new forward no longer calls their children's forward
    for candidate in found:
        name, module = candidate.name, candidate.module
        if any(name.startswith(p + ".") for p in replaced_subtrees):
            continue
        if candidate.refusal:
            report.add(ReportEntry(name, type(module).__name__, SKIPPED, detail=candidate.refusal))
            continue
        rejected = list(candidate.rejected)
        unsupported = unsupported_tensors([module], (), {}) if candidate.proposals else None
        if unsupported:  # float64 or meta parameters: the swapped forward would never run a kernel
            report.add(ReportEntry(name, type(module).__name__, SKIPPED, detail=f"its parameters are {unsupported}"))
            continue
        if not candidate.proposals and not rejected:
            if candidate.unrecognised:
                report.add(ReportEntry(name, type(module).__name__, NOT_RECOGNISED, detail=candidate.unrecognised))
            else:
                report.no_kernel[type(module).__name__] = report.no_kernel.get(type(module).__name__, 0) + 1
            continue
        for proposal in candidate.proposals:
            ruled_out = config.allows(proposal.kernel, name)
            if ruled_out:
                rejected.append(ruled_out)
                continue
            if proposal.matched_by == "computation" and proposal.confirm is not None:
                ok, detail = proposal.confirm(module, device, config.tolerance_scale)
                if not ok:
                    rejected.append(f"not {proposal.kernel}: {detail}")
                    continue
            elif proposal.matched_by == "computation" and proposal.probe_shapes is not None:
                ok, detail = confirm_by_probing(module, proposal, device, config.tolerance_scale)
                if not ok:
                    rejected.append(f"not {proposal.kernel}: {detail}")
                    continue
            chosen.append(Swap(name, module, proposal))
            if list(module.children()) and not proposal.keeps_children:
                replaced_subtrees.append(name)
            break
        else:
            if rejected:
                report.add(ReportEntry(name, type(module).__name__, SKIPPED, detail=summarise(rejected)))
    return chosen


def summarise(rejected: list[str]) -> str:
    """One line for a module no proposal fitted: probe mismatches are listed by kernel, other reasons in full."""
    mismatched = sorted({r.split(":")[0][4:] for r in rejected if r.startswith("not ") and "MISMATCH" in r})
    others = list(dict.fromkeys(r for r in rejected if not (r.startswith("not ") and "MISMATCH" in r)))
    parts = others + ([f"computes none of {', '.join(mismatched)} (outputs differ on probe inputs)"]
                      if mismatched else [])
    return "; ".join(parts)
