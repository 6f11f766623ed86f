"""Rotary embedding of q and k and the KV-cache update in one launch: rope_kv_append (issue 18).

In a Hugging Face attention forward they are two calls: `apply_rotary_pos_emb(q, k, cos, sin)` returns the rotated
q and k, then `past_key_values.update(k, v, layer_idx)` appends the rotated k, and v, to the cache. A routed forward
(routes.RoutedForward) sees both: the rotary function through its stand-in, the update through kv_append.CacheView.
So the stand-in may defer the rotation: it hands out two new tensors (q_out, k_out) not written yet and keeps what
it was asked (`Deferred`). When the update then receives that very k_out and the cache layer takes the append in
place, one rope_kv_append launch writes q_out, k_out and the cache's new rows of k and v.

Whatever else would read those outputs, or change the rotation's inputs, first has the rotation done the plain way
(ops.rope, copied into q_out and k_out), so no one ever sees them unwritten:
- a torch call that is given any of the six tensors: the route's TorchFunctionMode sees every torch call in the
  forward (which is why a rotation is deferred only where that mode is active: attention routed);
- an update the cache does not take in place, or an update of another tensor;
- the end of the forward with a rotation still deferred (a forward that returns k, say).
A rotation is deferred only when the last cache update of the same forward went in place (decode steps), so a
prefill, whose first update is the cache's own, rotates at once instead of rotating late with two extra copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._pytree import tree_leaves

from .. import ops

KERNEL = "rope_kv_append"


@dataclass
class Deferred:
    q: torch.Tensor
    k: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    interleaved: bool
    q_out: torch.Tensor
    k_out: torch.Tensor

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.q, self.k, self.cos, self.sin, self.q_out, self.k_out

    def rotate(self) -> None:
        """The plain way: the rope op, copied into the outputs handed out."""
        q, k = ops.rope(self.q, self.k, self.cos, self.sin, None, 0, self.interleaved)
        self.q_out.copy_(q)
        self.k_out.copy_(k)

    def append(self, k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               offset: int) -> None:
        """kv_append's append step (k is k_out): the rotation and both caches' new rows in one launch."""
        ops.rope_kv_append(self.q_out, self.k_out, k_cache, v_cache, self.q, self.k, v, self.cos, self.sin, None, 0,
                           self.interleaved, offset)


class Deferrals:
    """The rotations one routed forward has deferred and not done yet, and whether its last update went in place."""

    def __init__(self) -> None:
        self.pending: list[Deferred] = []
        self.in_place = False

    def defer(self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              interleaved: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(q_out, k_out), to be written by the update or on first use; None: rotate now."""
        if not self.in_place:
            return None
        q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        k_out = torch.empty(k.shape, dtype=k.dtype, device=k.device)
        self.pending.append(Deferred(q, k, cos, sin, interleaved, q_out, k_out))
        return q_out, k_out

    def take(self, k_out: object) -> Deferred | None:
        """The deferral whose k_out this is, no longer pending (the caller appends or rotates it)."""
        for i, deferred in enumerate(self.pending):
            if deferred.k_out is k_out:
                return self.pending.pop(i)
        return None

    def rotate_touched(self, args: tuple, kwargs: dict) -> None:
        """Rotated the plain way: the deferrals a torch call with these arguments would read or change."""
        leaves = [leaf for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
        touched = [d for d in self.pending if any(t is leaf for t in d.tensors() for leaf in leaves)]
        for deferred in touched:
            self.pending.remove(deferred)
            deferred.rotate()

    def rotate_all(self) -> None:
        while self.pending:
            self.pending.pop(0).rotate()
