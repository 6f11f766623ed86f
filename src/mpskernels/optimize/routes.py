"""Attention and rotary embeddings inside user and Hugging Face modules: the module's own forward, with its calls
routed to mpskernels ops.

An attention block's forward projects, reshapes, caches and calls attention in ways no type matcher can know, so
optimize() keeps that forward and routes two kinds of calls made inside it:

- `F.scaled_dot_product_attention`, through a TorchFunctionMode active only while the module's forward runs: a call
  whose meaning the attention op shares (4-D q/k/v, no dropout, an additive or boolean mask that broadcasts, causal
  only with as many queries as keys, grouped heads with enable_gqa or one broadcast KV head) runs `ops.attention`;
  any other call runs SDPA itself. The module is found by a static look at its forward's code, or by the example
  inputs: a spy records which module was running when SDPA was called (HF models call it through a table of
  attention functions).
- a rotary function the forward calls by a global name (HF's `apply_rotary_pos_emb(q, k, cos, sin)`): a plain
  function of four tensors returning the rotated (q, k), confirmed by probing against `ops.rope` (half-split or
  interleaved; partial rotary where the function passes the dimensions past the tables' width through). The
  forward runs as a copy of itself whose globals map that name to the rope op. With Hugging Face's `kernels`
  package installed, that global is a stateless nn.Module standing in for the function (see `_function_module`).

Attention written out with matmul + softmax is left to the compile backend: in eager mode the scores are already
computed when the pattern completes, so routing it would save nothing.

Cost: under the mode every torch call in the block's forward passes through Python (about 1.6 us each on this
project's 2-core Linux machine: +70 us on a 43-call LlamaAttention decode step). A block whose SDPA calls were not
routed on the example inputs drops the mode (RoutedForward.narrowed).
"""

from __future__ import annotations

import copy
import inspect
import types
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import ops
from ..kernels.spec import FLOAT_DTYPES
from ..registry import RUNNERS, unsupported_reason
from . import eager_attention
from .kv_append import KERNEL as KV_KERNEL, CacheView, buffer_of, is_hf_cache
from .rope_append import KERNEL as ROPE_KV_KERNEL, Deferrals
from .functional import FUNCTIONS, FunctionalRoute, bind_arguments, caller_frame, forward_codes, made_by

SDPA = F.scaled_dot_product_attention
SDPA_PARAMETERS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


# ---- scaled_dot_product_attention -> ops.attention ----


SDPA_DEFAULTS = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False}


def _sdpa_arguments(args: tuple, kwargs: dict) -> dict[str, Any] | None:
    return bind_arguments(SDPA_PARAMETERS, SDPA_DEFAULTS, args, kwargs)


def _masked_out_rows(mask: torch.Tensor) -> torch.Tensor:
    """Query rows whose every key is masked out: SDPA returns zeros there, softmax over -inf would give NaN."""
    return ~mask.any(-1) if mask.dtype == torch.bool else torch.isneginf(mask).all(-1)


def sdpa_as_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                      dropout_p: float, is_causal: bool, scale: float | None, enable_gqa: bool) -> torch.Tensor | str:
    """SDPA's result through ops.attention, or why this call is not one the kernel computes."""
    reason = eager_attention.qkv_mismatch(q, k, v, attn_mask)
    if reason:
        return reason
    if dropout_p:
        return f"dropout {dropout_p} (training)"
    if q.shape[1] != k.shape[1] and not (enable_gqa and q.shape[1] % k.shape[1] == 0) and k.shape[1] != 1:
        return "q and k have different head counts without enable_gqa"  # one KV head broadcasts: grouped too
    if is_causal and (attn_mask is not None or q.shape[2] != k.shape[2]):
        return "causal with a mask, or with fewer queries than keys (SDPA aligns the causal mask top-left)"
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool and attn_mask.dtype != q.dtype:
            return f"a {attn_mask.dtype} mask with q in {q.dtype}"
        lead = (1,) * (4 - attn_mask.dim()) + tuple(attn_mask.shape[:-1]) if 1 <= attn_mask.dim() <= 4 else None
        want = (q.shape[0], q.shape[1], q.shape[2])
        if lead is None or any(m not in (1, w) for m, w in zip(lead, want)) or \
                attn_mask.shape[-1] not in (1, k.shape[2]):
            return f"mask {tuple(attn_mask.shape)} does not broadcast to the scores {(*want, k.shape[2])}"
        mask = attn_mask  # boolean (True: attend) as SDPA's, or additive in q's dtype: the kernel takes both
    kv_len = None
    buffers = None if k.is_contiguous() else buffer_of(k, v)
    if buffers is not None:  # views of an in-place KV cache (kv_append.py): the buffer itself, read up to kv_len
        (k, v), kv_len = buffers, k.shape[2]
    reason = unsupported_reason(RUNNERS["attention"].family, {"q": q, "k": k, "v": v, "mask": mask,
                                                              "causal": bool(is_causal), "scale": scale,
                                                              "kv_len": kv_len})
    if reason:
        return reason
    out = ops.attention(q, k, v, mask, bool(is_causal), scale, kv_len)
    if attn_mask is not None:
        dead = _masked_out_rows(attn_mask)
        out = out.masked_fill(dead.expand(*out.shape[:3])[..., None], 0.0)
    return out


class RouteStats:
    """What the routes of one module did: calls routed per kernel, and why other calls were not."""

    def __init__(self) -> None:
        self.routed: Counter[str] = Counter()
        self.not_routed: Counter[str] = Counter()

    def reasons(self) -> str:
        return "; ".join(f"{r} (x{c})" for r, c in self.not_routed.most_common()) or "no such call was made"

    def describe(self) -> str:
        text = "routed " + ", ".join(f"{n} x{c}" for n, c in sorted(self.routed.items()))
        return text + (f"; not routed: {self.reasons()}" if self.not_routed else "")


class _SDPARoute(TorchFunctionMode):
    """SDPA calls to the attention op; and every torch call that is given a deferred rotation's tensors has the
    rotation done first (rope_append.py)."""

    def __init__(self, stats: RouteStats, deferrals: Deferrals | None = None) -> None:
        super().__init__()
        self.stats, self.deferrals = stats, deferrals

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.deferrals is not None and self.deferrals.pending:
            self.deferrals.rotate_touched(args, kwargs)
        if func is SDPA:
            bound = _sdpa_arguments(args, kwargs)
            result = sdpa_as_attention(*(bound[n] for n in SDPA_PARAMETERS)) if bound else "unknown arguments"
            if isinstance(result, torch.Tensor):
                self.stats.routed["attention"] += 1
                return result
            self.stats.not_routed[f"scaled_dot_product_attention: {result}"] += 1
        return func(*args, **kwargs)


# ---- rotary functions -> ops.rope ----

# batch, q heads, k heads, seq, head_dim, batch of the tables (1: shared by the batch, as HF's rotary module gives)
ROPE_PROBES = ((2, 3, 1, 5, 64, 2), (1, 4, 4, 7, 16, 1), (2, 2, 2, 3, 16, 1))


@dataclass(frozen=True)
class RotaryForm:
    interleaved: bool  # GPT-J's rotate_every_two; False: half-split (rotate_half)
    partial: bool  # tables narrower than head_dim rotate the first dims and pass the rest, as ops.rope does


_rope_forms: dict[Callable, RotaryForm | None] = {}  # probing results by function


TENSOR_ANNOTATIONS = (inspect.Parameter.empty, torch.Tensor, "torch.Tensor", "Tensor")


def _function_module(f: Any) -> bool:
    """A module that is only a function in a module's clothing: Hugging Face's `kernels` package
    (`use_kernel_forward_from_hub` on a function, which transformers applies to `apply_rotary_pos_emb` when
    `kernels` is installed) replaces the module-level function with an instance of a parameterless nn.Module whose
    forward calls the function, so that `kernels.kernelize` can give it a Hub kernel by replacing `forward` on an
    instance. Such an instance is probed like the function, as long as nothing is attached to it: no parameters,
    buffers, children or hooks, and no forward of its own (a kernelized instance runs someone else's kernel)."""
    return isinstance(f, nn.Module) and "forward" not in f.__dict__ and \
        isinstance(inspect.getattr_static(type(f), "forward", None), types.FunctionType) and \
        not (f._parameters or f._buffers or f._modules or f._forward_hooks or f._forward_pre_hooks)


def _signature(f: Any) -> inspect.Signature | None:
    """The parameters a call of `f` binds: a plain function's, or a function module's forward's (the forward's
    `__signature__`, which `kernels` copies from the function, without self)."""
    if not (isinstance(f, types.FunctionType) or _function_module(f)):
        return None
    try:
        return inspect.signature(f if isinstance(f, types.FunctionType) else f.forward)
    except (TypeError, ValueError):
        return None


def _four_tensor_function(f: Any) -> bool:
    """A plain Python function (or a function module) whose first four parameters are the only ones without
    defaults, and are not annotated as anything but tensors (so a function taking a config first is never probed)."""
    signature = _signature(f)
    if signature is None:
        return False
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return len(positional) >= 4 and required == positional[:4] and \
        all(p.annotation in TENSOR_ANNOTATIONS for p in required)


def _rope_probe(f: Callable, interleaved: bool, partial: bool = False) -> bool:
    for seed, (b, hq, hk, s, d, tb) in enumerate(ROPE_PROBES):
        g = torch.Generator().manual_seed(seed)
        q, k = torch.randn(b, hq, s, d, generator=g), torch.randn(b, hk, s, d, generator=g)
        angles = torch.rand(tb, s, d // 4 if partial else d // 2, generator=g) * 6.3
        angles = angles.repeat_interleave(2, -1) if interleaved else torch.cat((angles, angles), -1)
        try:
            with torch.no_grad():
                got = f(q.clone(), k.clone(), angles.cos(), angles.sin())
        except Exception:  # not a function of (q, k, cos, sin) with these shapes
            return False
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return False
        want = ops.rope(q, k, angles.cos(), angles.sin(), None, 0, interleaved)
        if any(a.shape != w.shape or not torch.allclose(a, w, rtol=1e-5, atol=1e-5) for a, w in zip(got, want)):
            return False
    return True


def rotary_form(f: Any) -> RotaryForm | None:
    """How `f(q, k, cos, sin)` computes the rotary embedding of q and k, or None when it does not."""
    if not _four_tensor_function(f):
        return None
    if f not in _rope_forms:
        interleaved = next((form for form in (False, True) if _rope_probe(f, form)), None)
        _rope_forms[f] = None if interleaved is None else RotaryForm(interleaved, _rope_probe(f, interleaved, True))
    return _rope_forms[f]


def _rope_call(name: str, original: Callable, form: RotaryForm, stats: RouteStats,
               deferrals: Deferrals | None = None) -> Callable:
    """`original`'s stand-in: the rope op for calls shaped as it was probed, `original` for the others. With
    `deferrals`, the rotation may wait for the cache update that takes k (rope_append.py)."""
    signature = _signature(original)
    defaults = {n: p.default for n, p in list(signature.parameters.items())[4:]}

    def rope(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs).arguments
        except TypeError:
            return original(*args, **kwargs)
        q, k, cos, sin = (bound.get(n) for n in list(signature.parameters)[:4])
        extra = {n: v for n, v in bound.items() if n in defaults}
        reason = _rope_mismatch(q, k, cos, sin, extra, defaults, form.partial)
        if reason:
            stats.not_routed[f"{name}: {reason}"] += 1
            return original(*args, **kwargs)
        stats.routed["rope"] += 1
        deferred = deferrals.defer(q, k, cos, sin, form.interleaved) if deferrals is not None else None
        return deferred if deferred is not None else ops.rope(q, k, cos, sin, None, 0, form.interleaved)

    return rope


def _rope_mismatch(q: Any, k: Any, cos: Any, sin: Any, extra: dict, defaults: dict, partial: bool) -> str | None:
    if not all(isinstance(t, torch.Tensor) for t in (q, k, cos, sin)):
        return "an argument is not a tensor"
    if any(v is not defaults[n] and (isinstance(v, torch.Tensor) or v != defaults[n]) for n, v in extra.items()):
        return "called with arguments beyond (q, k, cos, sin)"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, cos, sin)):
        return "gradients are needed"
    if q.dim() != 4 or k.dim() != 4 or q.dtype not in FLOAT_DTYPES or not q.dtype == k.dtype == cos.dtype == sin.dtype:
        return "q, k not 4-D or the dtypes differ"
    b, _, s, d = q.shape
    if (k.shape[0], k.shape[2], k.shape[3]) != (b, s, d) or cos.dim() != 3 or cos.shape[0] not in (1, b) \
            or cos.shape[1] != s or sin.shape != cos.shape:
        return f"tables {tuple(cos.shape)} are not [batch or 1, seq, rotary dim] for q {tuple(q.shape)}"
    rotary = cos.shape[2]
    if rotary != d and not (partial and rotary < d and rotary % 2 == 0):
        return f"tables of {rotary} for head_dim {d}" + ("" if partial else " (the function is not a partial rotary)")
    return None


def _retargeted(function: Callable, names: dict[str, Callable]) -> Callable | None:
    """A copy of `function` (through functools.wraps-style decorators) whose globals map `names` to new callables;
    None when a decorator does not hold the function it wraps in its closure."""
    chain = [function]
    while hasattr(chain[-1], "__wrapped__"):
        chain.append(chain[-1].__wrapped__)
    if not all(isinstance(f, types.FunctionType) for f in chain):
        return None

    def copy_function(f: types.FunctionType, globals_: dict, closure: tuple | None) -> types.FunctionType:
        new = types.FunctionType(f.__code__, globals_, f.__name__, f.__defaults__, closure)
        new.__kwdefaults__, new.__qualname__ = f.__kwdefaults__, f.__qualname__
        new.__dict__.update(f.__dict__)
        return new

    inner = chain[-1]
    new = copy_function(inner, {**inner.__globals__, **names}, inner.__closure__)
    for wrapper, wrapped in zip(reversed(chain[:-1]), reversed(chain[1:])):
        cells = wrapper.__closure__ or ()
        holders = [i for i, c in enumerate(cells) if _cell_holds(c, wrapped)]
        if len(holders) != 1:
            return None
        closure = tuple(types.CellType(new) if i == holders[0] else c for i, c in enumerate(cells))
        wrapped_copy, new = new, copy_function(wrapper, wrapper.__globals__, closure)
        new.__wrapped__ = wrapped_copy
    return new


def _cell_holds(cell: types.CellType, value: Any) -> bool:
    try:
        return cell.cell_contents is value
    except ValueError:  # an empty cell
        return False


def called_globals(function: Callable) -> dict[str, Any]:
    """Global names the (innermost) function's code loads, with their current values."""
    inner = inspect.unwrap(function)
    if not isinstance(inner, types.FunctionType):
        return {}
    codes, names = [inner.__code__], set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return {n: inner.__globals__[n] for n in names if n in inner.__globals__}


def calls_sdpa_in_code(module: nn.Module) -> bool:
    """The module's forward names scaled_dot_product_attention in its own code (F.scaled_dot_product_attention)."""
    inner = inspect.unwrap(type(module).forward)
    if not isinstance(inner, types.FunctionType):
        return False
    codes = [inner.__code__]
    while codes:
        code = codes.pop()
        if "scaled_dot_product_attention" in code.co_names:
            return True
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return False


def rotary_functions(module: nn.Module) -> tuple[dict[str, tuple[Callable, RotaryForm]], list[str]]:
    """Global functions the module's forward calls that compute the rotary embedding: name -> (function, form);
    and why a rotary function found is not routed for this module."""
    found: dict[str, tuple[Callable, RotaryForm]] = {}
    reasons = []
    for name, value in called_globals(type(module).forward).items():
        form = rotary_form(value)
        if form is None:
            continue
        kernelized = _kernelized_copies(module, value)
        if kernelized:
            reasons.append(f"its rotary function {name} runs a kernel set on this module's copy of it "
                           f"(kernels.kernelize: {', '.join(kernelized)}); left as it is")
            continue
        found[name] = (value, form)
    return found, reasons


def _kernelized_copies(module: nn.Module, function: Any) -> list[str]:
    """The module's private copies of a function module that were given another forward. A class decorated with
    `kernels.use_kernelized_func(f)` keeps its own instance of f's module class in `_kernel_funcs`, and its forward
    (wrapping the class's own) makes calls of the global f inside it run that instance, which `kernels.kernelize`
    may have given a Hub kernel's forward. Routing the global name would then replace that kernel, whose meaning
    the probe of the global never saw."""
    copies = module.__dict__.get("_kernel_funcs")
    if not isinstance(copies, dict):
        return []
    return [key for key, c in copies.items() if type(c) is type(function) and "forward" in c.__dict__]


# ---- the routed forward ----


def own_forward(module: nn.Module) -> Callable:
    """The module's forward before any swap: a routed forward built again for a copy of a swapped module (see
    install.SwappedForward) must not call the swap that holds it."""
    forward = module.forward
    unswapped = getattr(forward, "original", None)
    return unswapped() if callable(unswapped) and getattr(forward, "module", None) is module else forward


class RoutedForward:
    """The module's own forward, with SDPA calls, rotary functions and functional calls (functional.py: F.gelu,
    torch.softmax, F.layer_norm, ... whose kernels are in `functional`) routed to mpskernels ops."""

    def __init__(self, module: nn.Module, attention: bool, rotary: dict[str, tuple[Callable, RotaryForm]],
                 functional: frozenset[str] = frozenset(), kv_cache: bool = True,
                 eager: dict[str, tuple[Callable, inspect.Signature]] | None = None, rope_append: bool = True) -> None:
        self.stats = RouteStats()
        self.module, self.attention, self._rotary, self._eager = module, attention, rotary, eager or {}
        # a Hugging Face cache argument's update, done in place: the attention it feeds reads the views it leaves
        self.kv_cache = kv_cache and (attention or bool(self._eager))
        # the rotation and that update in one launch: only where the SDPA route's mode sees every torch call
        self.rope_append = rope_append and self.kv_cache and attention and bool(rotary)
        self.deferrals = Deferrals() if self.rope_append else None
        self.saw_cache = False
        self.functional = frozenset(functional)
        self.rotary, self.eager = sorted(rotary), sorted(self._eager)
        forward = self.original = own_forward(module)
        if rotary or self._eager:
            names = {n: _rope_call(n, f, form, self.stats, self.deferrals) for n, (f, form) in rotary.items()}
            names.update({n: eager_attention.stand_in(n, f, signature, self.stats)
                          for n, (f, signature) in self._eager.items()})
            forward = _retargeted(type(module).forward, names).__get__(module)
        self.forward = forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            # Dynamo cannot guard on a function copy's own globals; the compile backend rewrites these calls itself
            return self.original(*args, **kwargs)
        if self.kv_cache:
            kwargs = {k: self._cache_view(v) if is_hf_cache(v) else v for k, v in kwargs.items()}
        if self.functional:
            with FunctionalRoute(self.module, self.functional, self.stats):
                return self._attention_routed(*args, **kwargs)
        return self._attention_routed(*args, **kwargs)

    def _cache_view(self, cache: Any) -> CacheView:
        self.saw_cache = True  # for describe(): the route is named once a cache was passed
        return CacheView(cache, self.stats, self.deferrals)

    def _attention_routed(self, *args: Any, **kwargs: Any) -> Any:
        if not self.attention:
            return self.forward(*args, **kwargs)
        if self.deferrals is None:
            with _SDPARoute(self.stats):
                return self.forward(*args, **kwargs)
        try:
            with _SDPARoute(self.stats, self.deferrals):
                result = self.forward(*args, **kwargs)
        except BaseException:
            self.deferrals.pending.clear()
            raise
        self.deferrals.rotate_all()  # outputs the forward returned without any torch call reading them
        return result

    def narrowed(self) -> RoutedForward:
        """A fresh forward with only the routes that routed a call so far (on the example inputs): a route that
        never applies would only cost its interception."""
        rotary = self._rotary if self.stats.routed["rope"] else {}
        eager = self._eager if self.stats.routed["eager attention"] else {}
        functional = frozenset(k for k in self.functional if self.stats.routed[k])
        # the cache route stays: the example's one update (the prefill) is the cache's own, decoding's are not
        narrowed = RoutedForward(self.module, self.attention and self.stats.routed["attention"] > 0, rotary,
                                 functional, self.kv_cache, eager, self.rope_append)
        narrowed.saw_cache = self.saw_cache
        return narrowed

    @property
    def kernels(self) -> list[str]:
        kernels = (["rope"] if self.rotary else []) + (["attention"] if self.attention else [])
        return kernels + sorted(self.functional | ({"softmax"} if self.eager else set()))

    def describe(self) -> str:
        parts = []
        if self.rotary:
            parts.append(f"{', '.join(self.rotary)} -> rope")
        if self.attention:
            parts.append("scaled_dot_product_attention -> attention")
        if self.eager:
            parts.append(f"{', '.join(self.eager)} -> grouped matmuls around softmax (scale, soft-cap, mask)")
        if self.kv_cache and self.saw_cache:
            parts.append("a Hugging Face cache's update -> kv_cache_append in place" +
                         (" (with the rotation of its keys: rope_kv_append)" if self.rope_append else ""))
        if self.functional:
            parts.append(f"functional calls -> {', '.join(sorted(self.functional))}")
        return "; ".join(parts)


def routed_forward(module: nn.Module, attention: bool, allowed: Callable[[str], str | None],
                   functional: set[str] = frozenset()) -> RoutedForward | str:
    """The module's routes (attention when it calls SDPA; its rotary functions; the functional calls of the
    kernels in `functional`), or why it gets none."""
    reasons = []
    for kernel in sorted(functional):
        ruled_out = allowed(kernel)
        if ruled_out:
            reasons.append(ruled_out)
    functional = frozenset(k for k in functional if not allowed(k))
    ruled_out = allowed("attention") if attention else None
    if ruled_out:
        reasons.append(ruled_out)
        attention = False
    rotary, not_routed = rotary_functions(module)
    reasons.extend(not_routed)
    ruled_out = allowed("rope") if rotary else None
    if ruled_out:
        reasons.append(ruled_out)
        rotary = {}
    eager = eager_attention.eager_functions(module, called_globals(type(module).forward))
    ruled_out = allowed("softmax") if eager else None
    if ruled_out:
        reasons.append(ruled_out)
        eager = {}
    if (rotary or eager) and ("forward" in module.__dict__ or _retargeted(type(module).forward, {}) is None):
        reasons.append("its rotary or attention function is called from a forward mpskernels cannot copy")
        rotary, eager = {}, {}
    if not attention and not rotary and not functional and not eager:
        return "; ".join(reasons) if reasons else ""
    return RoutedForward(module, attention, rotary, functional, allowed(KV_KERNEL) is None, eager,
                         allowed(ROPE_KV_KERNEL) is None)


# ---- which modules call attention (seen on the example inputs) ----


class _Spy(TorchFunctionMode):
    """Counts, per innermost running module: SDPA calls, softmax over the last dimension of 4-D scores, and the
    functional calls the module's own code makes that a functional route could take (`fn:<kernel>`, see
    functional.py), with the products of silu's output by another tensor (`silu_mul`)."""

    def __init__(self, stack: list[tuple[str, nn.Module]], seen: dict[str, Counter]) -> None:
        super().__init__()
        self.stack, self.seen = stack, seen
        self.codes: dict[int, frozenset] = {}
        # the latest few, kept alive so identity means the very tensor (a product follows its silu closely; keeping
        # every layer's would hold a whole model's activations)
        self.silu_outputs: deque[torch.Tensor] = deque(maxlen=4)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.stack:
            return func(*args, **kwargs)
        name, module = self.stack[-1]
        if func is SDPA:
            self.seen.setdefault(name, Counter())["sdpa"] += 1
        elif func in (torch.softmax, F.softmax, torch.Tensor.softmax) and args and \
                isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if dim in (-1, 3):
                self.seen.setdefault(name, Counter())["softmax"] += 1
        if func in FUNCTIONS or func in PRODUCTS:
            codes = self.codes.get(id(module))
            if codes is None:
                codes = self.codes[id(module)] = forward_codes(module)
            if made_by(module, codes, caller_frame()):
                if func in PRODUCTS and any(a is t for a in args for t in self.silu_outputs):
                    self.seen.setdefault(name, Counter())["silu_mul"] += 1
                elif func in FUNCTIONS:
                    self.seen.setdefault(name, Counter())[f"fn:{FUNCTIONS[func][0]}"] += 1
                    if func is F.silu:
                        result = func(*args, **kwargs)
                        self.silu_outputs.append(result)
                        return result
        return func(*args, **kwargs)


PRODUCTS = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)


@torch.no_grad()
def attention_calls(model: nn.Module, args: tuple, kwargs: dict) -> dict[str, Counter]:
    """Runs the model once on copies of the inputs; which modules called SDPA, a 4-D softmax or a routable
    function (see _Spy), and how often."""
    stack: list[tuple[str, nn.Module]] = []
    seen: dict[str, Counter] = {}
    handles = []
    def leave(module: nn.Module, args: tuple, output: Any) -> None:
        stack.pop()  # a hook's return value would replace the module's output

    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(lambda mod, a, _n=name: stack.append((_n, mod))))
        handles.append(m.register_forward_hook(leave, always_call=True))
    try:
        with _Spy(stack, seen):
            model(*copy_arguments(args), **copy_arguments(kwargs))
    finally:
        for h in handles:
            h.remove()
    return seen


def copy_arguments(value: Any) -> Any:
    """Tensors cloned and other objects deep-copied (a KV cache the call updates), so a call can be replayed."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        items = [copy_arguments(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {k: copy_arguments(v) for k, v in value.items()}
    if isinstance(value, nn.Module) or value is None or isinstance(value, (int, float, str, bool)):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that cannot be copied is passed as it is
        return value
