"""A rotary-embedding module with its own `forward(q, k)`: it makes its cos/sin tables itself (from an `inv_freq`
buffer, a cached table, or anything else) and returns the rotated (q, k). routes.py covers the other common form,
a global function of (q, k, cos, sin) that an attention block calls.

Nothing in such a module says which tables it uses, so they are read off its own forward: for the half-split form
(rotate_half) a q whose first half is 1 and second half 0 comes out as [cos | sin] for each position; for the
interleaved form (GPT-J's rotate_every_two) a q of 1, 0, 1, 0, ... comes out as cos, sin interleaved. Both forms are
proposed, and probing picks the one under which `ops.rope` with the read tables reproduces the module's forward on
random q and k of several shapes (grouped heads, sequence lengths, batch). The tables are read once per (sequence
length, head dim, device) and kept until one of the module's buffers changes, so a call costs one lookup and one
rope launch instead of the module's table arithmetic and its eight or so elementwise ops.

A call the kernel does not take runs the module's own forward: extra arguments (a position offset, a sequence
dimension), q and k of different sequence lengths or head dims, not 4-D, or mixed dtypes. Partial rotary (tables
narrower than the head) is not recognised: the read tables would cover the whole head.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable

import torch
from torch import nn

from .. import ops
from ..kernels.spec import FLOAT_DTYPES
from .compare import agree
from .matchers import Replacement, _own_parameters, is_torch_builtin
from .pending import version

HEAD_DIM_ATTRIBUTES = ("dim", "head_dim", "rotary_dim", "dims", "dim_head")
# (batch, q heads, k heads, seq): grouped heads, a single token, batch > 1
PROBE_SHAPES = ((2, 4, 2, 5), (1, 3, 3, 1), (1, 2, 1, 9))


def _two_tensor_forward(m: nn.Module) -> inspect.Signature | None:
    """The forward's signature when exactly two parameters (q, k) have no default."""
    forward = inspect.unwrap(type(m).forward)
    if not isinstance(forward, types.FunctionType):
        return None
    try:
        signature = inspect.signature(types.MethodType(forward, m))
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return signature if len(required) == 2 and required == positional[:2] else None


def head_dims(m: nn.Module) -> list[int]:
    """Head dims the module may take: twice the length of a 1-D buffer (inv_freq), or an int attribute."""
    dims = [2 * b.shape[0] for b in m.buffers(recurse=False) if b.dim() == 1 and b.shape[0] > 0]
    dims += [v for a in HEAD_DIM_ATTRIBUTES if isinstance(v := getattr(m, a, None), int) and v > 0 and v % 2 == 0]
    return list(dict.fromkeys(dims))


def _own_forward(m: nn.Module) -> Callable[..., Any]:
    """The module's forward as it was before any swap (the swap object keeps it)."""
    installed = m.__dict__.get("forward")
    if installed is not None and hasattr(installed, "original"):
        return installed.original()
    return installed if installed is not None else types.MethodType(type(m).forward, m)


@torch.no_grad()
def read_tables(m: nn.Module, interleaved: bool, seq: int, dim: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The float32 [seq, dim] cos and sin tables the module's forward applies, or None if its output has another
    shape."""
    unit = torch.zeros(dim, device=device)
    if interleaved:
        unit[0::2] = 1
    else:
        unit[: dim // 2] = 1
    x = unit.expand(1, 1, seq, dim).contiguous()
    out = _own_forward(m)(x, x.clone())
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)) or \
            out[0].shape != x.shape:
        return None
    rows = out[0][0, 0].float()
    if interleaved:
        cos, sin = rows[:, 0::2].repeat_interleave(2, -1), rows[:, 1::2].repeat_interleave(2, -1)
    else:
        cos, sin = rows[:, : dim // 2].repeat(1, 2), rows[:, dim // 2:].repeat(1, 2)
    return cos, sin


class RotaryModuleForward:
    """The swapped forward of one rotary module under one form; holds the tables it has read."""

    def __init__(self, module: nn.Module, interleaved: bool, signature: inspect.Signature):
        self.module, self.interleaved, self.signature = module, interleaved, signature
        self.names = list(signature.parameters)
        self.tables: dict[tuple, tuple[torch.Tensor, torch.Tensor] | None] = {}

    def state(self) -> tuple | None:
        """What the tables depend on besides the call's shape: the module's buffers, as they are now (None: a
        buffer made under torch.inference_mode has no version counter, so a change to it could not be seen)."""
        versions = [version(b) for b in self.module.buffers()]
        if None in versions:
            return None
        return tuple((b.data_ptr(), v) for b, v in zip(self.module.buffers(), versions))

    def tables_for(self, seq: int, dim: int, dtype: torch.dtype, device: torch.device):
        state = self.state()
        key = (seq, dim, dtype, device, state)
        if state is None or key not in self.tables:
            read = read_tables(self.module, self.interleaved, seq, dim, device)
            tables = None if read is None else (read[0].to(dtype), read[1].to(dtype))
            if state is None:
                return tables  # read for this call only
            self.tables[key] = tables
        return self.tables[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return NotImplemented
        if set(bound.arguments) != set(self.names[:2]):
            return NotImplemented  # an offset, a sequence dimension, ...: the module's own forward knows them
        q, k = (bound.arguments[n] for n in self.names[:2])
        if declines(q, k):
            return NotImplemented
        tables = self.tables_for(q.shape[2], q.shape[3], q.dtype, q.device)
        if tables is None:
            return NotImplemented
        return ops.rope(q, k, tables[0], tables[1], None, 0, self.interleaved)


def declines(q: Any, k: Any) -> bool:
    """q, k are not what ops.rope takes in place of the module: 4-D [batch, heads, seq, head_dim] of one float
    dtype with k's batch, seq and head_dim equal to q's."""
    if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)) or q.dim() != 4 or k.dim() != 4:
        return True
    if q.dtype not in FLOAT_DTYPES or k.dtype != q.dtype or q.device != k.device or q.shape[3] % 2:
        return True
    return (k.shape[0], k.shape[2], k.shape[3]) != (q.shape[0], q.shape[2], q.shape[3])


@torch.no_grad()
def confirm_rotary(forward: RotaryModuleForward, dim: int, device: torch.device, scale: float) -> tuple[bool, str]:
    """The module's forward and ops.rope with the tables read off it agree on random q, k of several shapes."""
    for seed, (b, hq, hk, s) in enumerate(PROBE_SHAPES):
        g = torch.Generator().manual_seed(seed)
        q, k = (torch.randn(b, h, s, dim, generator=g).to(device) for h in (hq, hk))
        try:
            want = _own_forward(forward.module)(q.clone(), k.clone())
        except Exception as e:  # not a forward of (q, k) in this layout
            return False, f"forward failed on probe q {tuple(q.shape)}, k {tuple(k.shape)} ({type(e).__name__})"
        if not (isinstance(want, tuple) and len(want) == 2):
            return False, "the forward does not return (q, k)"
        got = forward(q.clone(), k.clone())
        if got is NotImplemented:
            return False, f"its tables could not be read for q {tuple(q.shape)}"
        for name, a, w in zip("qk", got, want):
            ok, detail, _ = agree(a, w, scale)
            if not ok:
                return False, f"{name} for q {tuple(q.shape)}: {detail}"
    return True, "agrees on probe inputs"


@torch.no_grad()
def returns_a_pair_like_its_inputs(m: nn.Module, dim: int) -> bool:
    """The one forward a recogniser here runs: (q, k) of head dim `dim` in, two tensors of their shapes out. It
    keeps modules with the same signature but another meaning (Hugging Face's LlamaRotaryEmbedding(x, position_ids)
    returns the tables) out of the proposals, so the report does not list them as rotary modules that failed."""
    device = next((b.device for b in m.buffers(recurse=False)), torch.device("cpu"))
    q, k = torch.randn(1, 2, 3, dim, device=device), torch.randn(1, 1, 3, dim, device=device)
    try:
        out = _own_forward(m)(q, k)
    except Exception:  # noqa: BLE001 - not a forward of (q, k)
        return False
    return isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out) and \
        out[0].shape == q.shape and out[1].shape == k.shape


def confirm_form(forward: RotaryModuleForward, dim: int, module: nn.Module, device: torch.device,
                 scale: float) -> tuple[bool, str]:
    ok, detail = confirm_rotary(forward, dim, device, scale)
    return ok, detail if ok else f"{'interleaved' if forward.interleaved else 'half-split'}, head dim {dim}: {detail}"


def recognise_rotary_module(m: nn.Module) -> list[Replacement] | None:
    """A parameter-free, childless module whose forward takes (q, k) and returns a pair of their shapes: the
    half-split and interleaved rotary embeddings are proposed for each head dim its buffers or attributes suggest;
    probing confirms one or none."""
    if is_torch_builtin(m) or _own_parameters(m) or list(m.children()):
        return None
    signature = _two_tensor_forward(m)
    if signature is None:
        return None
    out = []
    for dim in filter(functools.partial(returns_a_pair_like_its_inputs, m), head_dims(m)):
        for interleaved in (False, True):
            forward = RotaryModuleForward(m, interleaved, signature)
            out.append(Replacement(
                "rope", forward, "computation", full_signature=True,
                detail=f"rotary embedding ({'interleaved' if interleaved else 'half-split'}, head dim {dim}), "
                       "tables read off the module",
                confirm=functools.partial(confirm_form, forward, dim)))
    return out
