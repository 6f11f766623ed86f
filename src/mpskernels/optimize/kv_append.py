"""A Hugging Face KV cache's update, done in place by one kv_cache_append launch (keys and values together).

Inside a routed attention forward (routes.RoutedForward), the cache argument is seen through `CacheView`, whose
`update(k, v, layer_idx)` takes these layers (every other layer class, and every call it cannot take, runs the
cache's own update):

- `DynamicLayer` (DynamicCache): its update concatenates, copying the whole cache at every token (two cats, and
  O(cache) bytes moved per layer per token). Here the layer's keys and values live at the front of a buffer with
  spare rows; a step writes the new rows after them and the layer holds views of the longer prefix. The semantics
  the layer promises are kept: each update returns (and stores) tensors holding exactly the cached rows; tensors
  returned earlier keep their values, because only rows past them are written. The buffer is used only while the
  layer still holds the very views set last: after anything else replaced them (crop, beam reordering, reset, a
  user's assignment) the layer's tensors are copied into a fresh buffer first.
- `StaticLayer` (StaticCache): its update is an index_copy_ per tensor at positions arange(S) +
  cumulative_length; here one kv_cache_append at that offset, then cumulative_length.add_(S) as HF does. The
  offset is mirrored on the host (read from the device once per layer, and again whenever cumulative_length
  changed under us, seen by its version counter), so a step does not read the device.

The attention route then passes the buffer itself with kv_len (attention kernel's KV-cache form) instead of the
strided view, which it would otherwise copy to make contiguous.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import ops
from ..kernels.spec import FLOAT_DTYPES
from .pending import version
from .rope_append import KERNEL as ROPE_KV_KERNEL, Deferrals

KERNEL = "kv_cache_append"
# (k_cache, v_cache, k, v, offset) -> None: writes the new rows k and v at row `offset` of both caches
Append = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], None]
SPARE_ROWS = 256  # rows a buffer holds past the cache when it is made or grown, plus a quarter of the cache


@dataclass
class _Grown:
    k_buffer: torch.Tensor
    v_buffer: torch.Tensor
    keys: torch.Tensor  # the views the layer was given last
    values: torch.Tensor


_dynamic: "weakref.WeakKeyDictionary[Any, _Grown]" = weakref.WeakKeyDictionary()
_static: "weakref.WeakKeyDictionary[Any, tuple[int, int]]" = weakref.WeakKeyDictionary()  # (offset, version)
# buffer data pointer -> (k buffer, v buffer), weakly: the attention route's look-up of a view's buffer
_buffers: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def _layer_classes() -> tuple[type | None, type | None]:
    try:
        from transformers.cache_utils import DynamicLayer, StaticLayer
    except ImportError:
        return None, None
    return DynamicLayer, StaticLayer


def takes(k: Any, v: Any, keys: torch.Tensor, values: torch.Tensor) -> bool:
    """New rows the append op takes for these cache tensors: 4-D, one dtype and device, batch and heads and
    head sizes of the cache, no autograd."""
    if not (isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)) or k.dim() != 4 or v.dim() != 4:
        return False
    if k.dtype not in FLOAT_DTYPES or not k.dtype == v.dtype == keys.dtype == values.dtype:
        return False
    if k.device != keys.device or v.device != keys.device or k.shape[2] != v.shape[2]:
        return False
    if k.shape[:2] != keys.shape[:2] or v.shape[:2] != values.shape[:2] or k.shape[3] != keys.shape[3] or \
            v.shape[3] != values.shape[3]:
        return False
    return not (torch.is_grad_enabled() and (k.requires_grad or v.requires_grad))


def _new_buffers(keys: torch.Tensor, values: torch.Tensor, rows: int) -> _Grown:
    """Buffers with room for `rows` cached rows and spare ones, holding the layer's current rows."""
    capacity = rows + rows // 4 + SPARE_ROWS
    kb = keys.new_empty(keys.shape[0], keys.shape[1], capacity, keys.shape[3])
    vb = values.new_empty(values.shape[0], values.shape[1], capacity, values.shape[3])
    held = keys.shape[2]
    kb[:, :, :held].copy_(keys)
    vb[:, :, :held].copy_(values)
    _buffers[kb.data_ptr()] = (weakref.ref(kb), weakref.ref(vb))
    weakref.finalize(kb, _buffers.pop, kb.data_ptr(), None)
    return _Grown(kb, vb, kb[:, :, :held], vb[:, :, :held])


def dynamic_update(layer: Any, k: Any, v: Any, append: Append) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not layer.is_initialized or layer.keys is None or layer.keys.dim() != 4 or layer.keys.numel() == 0:
        return None  # the first update (prefill) is the layer's own; the buffer takes over from the next one
    keys, values = layer.keys, layer.values
    if not takes(k, v, keys, values):
        return None
    grown = _dynamic.get(layer)
    held, new = keys.shape[2], k.shape[2]
    if grown is None or keys is not grown.keys or values is not grown.values or \
            held + new > grown.k_buffer.shape[2]:
        grown = _new_buffers(keys, values, held + new)
        _dynamic[layer] = grown
    append(grown.k_buffer, grown.v_buffer, k, v, held)
    grown.keys = grown.k_buffer[:, :, : held + new]
    grown.values = grown.v_buffer[:, :, : held + new]
    layer.keys, layer.values = grown.keys, grown.values
    return grown.keys, grown.values


def static_update(layer: Any, k: Any, v: Any, append: Append) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not layer.is_initialized or not takes(k, v, layer.keys, layer.values):
        return None
    counter = layer.cumulative_length
    if not isinstance(counter, torch.Tensor) or counter.numel() != 1:
        return None
    mirrored = _static.get(layer)
    known = mirrored is not None and mirrored[1] is not None and mirrored[1] == version(counter)
    offset = mirrored[0] if known else int(counter)  # unchanged since our last append: no read of the device
    if offset + k.shape[2] > layer.keys.shape[2]:
        return None  # past the end: the layer's own update says so
    append(layer.keys, layer.values, k, v, offset)
    counter.add_(k.shape[2])
    _static[layer] = (offset + k.shape[2], version(counter))
    return layer.keys, layer.values


def in_place_update(cache: Any, k: Any, v: Any, layer_idx: Any,
                    append: Append | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cache layer updated in place (its new rows written by `append`, kv_cache_append by default), or None
    when it is not a layer (or a call) this takes."""
    append = append or ops.kv_cache_append
    dynamic, static = _layer_classes()
    layers = getattr(cache, "layers", None)
    if dynamic is None or not isinstance(layer_idx, int) or not isinstance(layers, list) or \
            not 0 <= layer_idx < len(layers) or getattr(cache, "offloading", False):
        return None
    layer = layers[layer_idx]
    if type(layer) is dynamic:
        return dynamic_update(layer, k, v, append)
    if type(layer) is static:
        return static_update(layer, k, v, append)
    return None


def buffer_of(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(k buffer, v buffer) when k and v are the prefix views of one pair of this module's buffers."""
    found = _buffers.get(k.data_ptr())
    if found is None:
        return None
    kb, vb = found[0](), found[1]()
    if kb is None or vb is None or vb.data_ptr() != v.data_ptr() or k.stride() != kb.stride() or \
            v.stride() != vb.stride() or k.shape[:2] != kb.shape[:2] or k.shape[3] != kb.shape[3] or \
            v.shape[:2] != vb.shape[:2] or v.shape[3] != vb.shape[3] or k.shape[2] != v.shape[2] or \
            k.dtype != kb.dtype or v.dtype != vb.dtype:
        return None
    return kb, vb


def is_hf_cache(value: Any) -> bool:
    return type(value).__module__.startswith("transformers.") and isinstance(getattr(value, "layers", None), list) \
        and callable(getattr(value, "update", None))


class CacheView:
    """The cache, with `update` done in place where in_place_update takes the call; every other attribute is the
    cache's own (reads and writes), and isinstance sees the cache's class."""

    __slots__ = ("_cache", "_stats", "_deferrals")

    def __init__(self, cache: Any, stats: Any, deferrals: Deferrals | None = None) -> None:
        object.__setattr__(self, "_cache", cache)
        object.__setattr__(self, "_stats", stats)
        object.__setattr__(self, "_deferrals", deferrals)

    @property
    def __class__(self):  # noqa: D401  (isinstance(view, DynamicCache) as for the cache itself)
        return type(object.__getattribute__(self, "_cache"))

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_cache"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_cache"), name, value)

    def __len__(self) -> int:
        return len(object.__getattribute__(self, "_cache"))

    def __getitem__(self, index: Any) -> Any:
        return object.__getattribute__(self, "_cache")[index]

    def __iter__(self):
        return iter(object.__getattribute__(self, "_cache"))

    def __bool__(self) -> bool:
        return bool(object.__getattribute__(self, "_cache"))

    def update(self, key_states: Any, value_states: Any, layer_idx: Any, *args: Any, **kwargs: Any) -> Any:
        """In place where in_place_update takes the call; with a rotation deferred for these keys (rope_append.py),
        the rotation, its outputs and both caches' new rows in one rope_kv_append launch."""
        cache = object.__getattribute__(self, "_cache")
        deferrals = object.__getattribute__(self, "_deferrals")
        deferred = deferrals.take(key_states) if deferrals is not None and deferrals.pending else None
        result = None
        if not torch.compiler.is_compiling():
            result = in_place_update(cache, key_states, value_states, layer_idx,
                                     None if deferred is None else deferred.append)
        if deferrals is not None:
            deferrals.in_place = result is not None
        if result is not None:
            object.__getattribute__(self, "_stats").routed[KERNEL if deferred is None else ROPE_KV_KERNEL] += 1
            return result
        if deferred is not None:
            deferred.rotate()  # the cache's own update reads the rotated keys
        return cache.update(key_states, value_states, layer_idx, *args, **kwargs)
