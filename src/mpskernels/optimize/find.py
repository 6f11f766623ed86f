"""Stage 1, find candidates: which modules a kernel could replace, and with what (kernel packs first, then the
type and computation matchers, then routed attention and rotary calls). Nothing is run here but matchers."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from torch import nn

from .config import OptimizeConfig
from .install import is_swapped
import functools

from .matchers import Replacement, candidates, is_torch_builtin, type_match
from .plan import Candidate
from .functional import SILU_MUL, functional_kernels
from .eager_attention import eager_functions
from .routes import RoutedForward, attention_calls, called_globals, calls_sdpa_in_code, routed_forward, rotary_functions

WRITTEN_OUT = ("computes attention written out (softmax over 4-D scores): optimize() routes "
               "scaled_dot_product_attention calls and Hugging Face's eager attention functions, not this one; "
               "torch.compile(backend=\"mpskernels\") rewrites this form")


NOTHING = ("nothing recognised: it computes no activation, norm or gated MLP a kernel covers, and its forward "
           "makes no call a kernel routes (attention, rotary, F.gelu, softmax, F.layer_norm, ...)")
NOTHING_WITH_CHILDREN = ("nothing recognised in its own code (no call a kernel routes: attention, rotary, F.gelu, "
                         "softmax, F.layer_norm, ...); its submodules are looked at on their own")


def find_candidates(model: nn.Module, config: OptimizeConfig, packs: list[Any],
                    example: tuple[Sequence[Any], dict] | None) -> list[Candidate]:
    """Every module not swapped yet, in named_modules() order, with its proposals or why it has none."""
    calls = None
    if example is not None and any(not is_torch_builtin(m) for m in model.modules()):
        calls = attention_calls(model, tuple(example[0]), example[1])  # which modules call SDPA, seen running
    found = []
    for name, module in model.named_modules():
        if is_swapped(module):
            continue  # already swapped by an earlier optimize()
        candidate = Candidate(name, module)
        answer = pack_replacement(module, packs) or type_match(module)
        if isinstance(answer, str):
            candidate.refusal = answer
        else:
            candidate.proposals = [answer] if isinstance(answer, Replacement) else candidates(module)
            if answer is None and not is_torch_builtin(module):
                routed = routed_proposal(name, module, calls, config)
                if isinstance(routed, Replacement):
                    candidate.proposals.append(routed)
                elif routed:
                    candidate.rejected.append(routed)
            if not (candidate.proposals or candidate.rejected or is_torch_builtin(module)):
                candidate.unrecognised = NOTHING_WITH_CHILDREN if list(module.children()) else NOTHING
        found.append(candidate)
    return found


def routed_proposal(name: str, module: nn.Module, calls: dict[str, Any] | None,
                    config: OptimizeConfig) -> Replacement | str:
    """The module's own forward with its SDPA calls (seen on the example inputs, or named in its code) and its
    rotary functions routed to mpskernels ops; or why it gets none (empty: nothing to say)."""
    seen = (calls or {}).get(name, {})
    sdpa = seen.get("sdpa", 0) > 0 or calls_sdpa_in_code(module)
    functional = functional_kernels(seen, module, calls is not None)
    routed = routed_forward(module, sdpa, lambda kernel: config.allows(kernel, name), functional)
    eager_routed = isinstance(routed, RoutedForward) and bool(routed.eager)
    notes = [WRITTEN_OUT if seen.get("softmax") and not eager_routed else "",
             SILU_MUL if seen.get("silu_mul") else ""]
    if isinstance(routed, str):
        return "; ".join(r for r in (routed, *notes) if r)
    return routed_replacement(routed, "; ".join(n for n in notes if n))


def routed_replacement(routed: RoutedForward, notes: str = "") -> Replacement:
    rebuild = functools.partial(rebuild_routed, routed.attention, tuple(routed.rotary),
                                tuple(sorted(routed.functional)), kv_cache=routed.kv_cache, eager=tuple(routed.eager),
                                rope_append=routed.rope_append)
    detail = "; ".join(d for d in (routed.describe(), notes) if d)
    return Replacement("+".join(routed.kernels), routed, "computation", full_signature=True, keeps_children=True,
                       detail=detail, rebuild=rebuild)


def rebuild_routed(attention: bool, rotary: tuple[str, ...], functional: tuple[str, ...],
                   module: nn.Module, kv_cache: bool = True, eager: tuple[str, ...] = (),
                   rope_append: bool = True) -> Replacement | None:
    """The same routes for a copy of the module they were found on."""
    found, _ = rotary_functions(module)
    eager_found = eager_functions(module, called_globals(type(module).forward)) if eager else {}
    if any(name not in found for name in rotary) or any(name not in eager_found for name in eager):
        return None
    routes = RoutedForward(module, attention, {name: found[name] for name in rotary}, frozenset(functional),
                           kv_cache, {name: eager_found[name] for name in eager}, rope_append)
    return routed_replacement(routes)


def load_packs(kernel_packs: Sequence[Any]) -> list[Any]:
    from ..packs import KernelPack, load_pack

    return [p if isinstance(p, KernelPack) else load_pack(p) for p in kernel_packs]


def pack_replacement(module: nn.Module, packs: list[Any]) -> Replacement | None:
    """The first pack generated for this module's class, as a replacement taking the module's whole call."""
    from ..packs import PackModule

    for pack in packs:
        if pack.matches(module):
            runner = PackModule(pack, module, strict=False)
            return Replacement(f"pack:{pack.name}", lambda *a, **k: runner.run(a, k), "kernel pack",
                               full_signature=True, version=hashlib.sha256(pack.source.encode()).hexdigest()[:16],
                               rebuild=functools.partial(rebuild_pack, pack))
    return None


def rebuild_pack(pack: Any, module: nn.Module) -> Replacement | None:
    return pack_replacement(module, [pack])
