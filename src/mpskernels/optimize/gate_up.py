"""A gated MLP's gate and up projections as one matmul (issue 18: one launch fewer per decoder layer).

The two Linear layers' weights (and biases) are made the two halves of one buffer, in place: each Parameter keeps
its identity, values, requires_grad and state-dict key; only where its data lives changes (`param.data = half`).
Then x @ cat(W1, W2)^T is one matmul whose output holds both projections side by side, and the gated op reads its
halves (matchers._gated_forward: swiglu_split when the gate is the first half).

The buffer is made at the first call that takes the fused path, so optimize()'s probes, check and timing run the
fused form, and a deep copy or a loaded model (whose parameters have storages of their own again) fuses again at
its first call. The fused path is not taken, and the two Linear layers run as before:
- while autograd records the call (the fused matmul reads the buffer, not the parameters, so their gradients
  would be lost), or under torch.compile;
- when a projection is not a plain nn.Linear, has forward hooks or a forward of its own on the instance (they
  would not run), or is the other one;
- when a weight (or bias) does not own its whole storage and is not already fused with the other: a view into a
  larger checkpoint buffer, or a parameter already fused with another module's (fusing it again would undo that
  one, and the two would take turns at every call). Fused with each other the other way round (optimize() probes
  both orders of a gate and an up projection) they are fused again in the order asked for.

What stays visible: the two parameters share one storage, as disjoint halves. torch.save keeps them shared,
Hugging Face's save_pretrained and safetensors' save_file write them as separate tensors, and load_state_dict
copies into them in place. mpskernels.restore() leaves the buffer shared (same values, same parameters).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks

# first projections whose fusing PyTorch refused: not tried again at every call
_refused: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def fusable(first: nn.Module, second: nn.Module) -> bool:
    """Two distinct plain Linear layers one matmul can compute: same input size, dtype and device, and both or
    neither with a bias."""
    return type(first) is nn.Linear and type(second) is nn.Linear and first is not second and \
        first.in_features == second.in_features and first.weight.dtype == second.weight.dtype and \
        first.weight.device == second.weight.device and (first.bias is None) == (second.bias is None)


def project(x: torch.Tensor, first: nn.Module, second: nn.Module) -> torch.Tensor | None:
    """x through both projections in one matmul: [..., out1 + out2], the first's outputs first. The weights are
    fused if they are not yet. None where the fused path does not apply (the caller runs the two layers)."""
    if torch.compiler.is_compiling() or not fusable(first, second) or _hooked(first) or _hooked(second):
        return None
    w1, w2, b1, b2 = first.weight, second.weight, first.bias, second.bias
    if torch.is_grad_enabled() and (x.requires_grad or w1.requires_grad or w2.requires_grad or
                                    (b1 is not None and (b1.requires_grad or b2.requires_grad))):
        return None
    if x.dtype != w1.dtype or x.device != w1.device or x.shape[-1:] != w1.shape[1:]:
        return None
    if not _fused(first, second):
        if not (_fused(second, first) or all(_owns_storage(t) for t in (w1, w2, b1, b2) if t is not None)):
            return None
        if first in _refused or not _fuse(first, second):
            _refused[first] = True
            return None
    rows = w1.shape[0] + w2.shape[0]
    weight = w1.as_strided((rows, w1.shape[1]), w1.stride())
    bias = None if b1 is None else b1.as_strided((rows,), (1,))
    return F.linear(x, weight, bias)


def _fused(first: nn.Linear, second: nn.Linear) -> bool:
    """first's weight (and bias) directly followed by second's, in one storage."""
    return _neighbours(first.weight, second.weight) and (first.bias is None or _neighbours(first.bias, second.bias))


def _hooked(m: nn.Module) -> bool:
    """Something of its own would run if the layer were called: forward hooks (its own or global ones), or a
    forward set on the instance (accelerate's offloading hooks and some adapters wrap it that way)."""
    return bool(m._forward_hooks or m._forward_pre_hooks or module_hooks._global_forward_hooks or
                module_hooks._global_forward_pre_hooks or "forward" in m.__dict__)


def _owns_storage(t: torch.Tensor) -> bool:
    return t.is_contiguous() and t.storage_offset() == 0 and \
        t.untyped_storage().nbytes() == t.numel() * t.element_size()


def _neighbours(a: torch.Tensor, b: torch.Tensor) -> bool:
    """b starts where a ends, in one storage, both contiguous: together they are one contiguous tensor."""
    return a.is_contiguous() and b.is_contiguous() and a.dtype == b.dtype and a.shape[1:] == b.shape[1:] and \
        b.storage_offset() == a.storage_offset() + a.numel() and \
        a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _fuse(first: nn.Linear, second: nn.Linear) -> bool:
    """The two layers' weights (and biases) made the halves of one new buffer, in place; False where PyTorch
    refuses to swap a parameter's data (an inference tensor's, say). The values are the same either way."""
    pairs = [(first.weight, second.weight)] + ([(first.bias, second.bias)] if first.bias is not None else [])
    try:
        with torch.inference_mode(False), torch.no_grad():
            halves = []
            for a, b in pairs:
                both = torch.cat((a, b))
                halves.append((both[: a.shape[0]], both[a.shape[0]:]))
            for (a, b), (low, high) in zip(pairs, halves):
                a.data, b.data = low, high
    except RuntimeError:
        return False
    return True
