"""The chains of MLX kernels that stand where our fused activations stand.

MLX's own `mlx.nn.silu`/`gelu` are `mx.compile`d: in an MLX program they fuse into one JIT-generated kernel whose
source is not in the wheel. What runs eagerly, op by op, is the chain of primitives their Python body spells out:
  silu(x)            = x * sigmoid(x)                       -> v(n)_Sigmoid, vv(n)_Multiply
  gelu(x)            = x * (1 + erf(x / sqrt(2))) / 2       -> vs(n)_Divide, v(n)_Erf, sv(n)_Add, vv(n)_Multiply,
                                                               vs(n)_Divide
  swiglu(a, b)       = silu(a) * b                          -> the silu chain, vv(n)_Multiply
  bias_act(x, b, act)= act(x + b), b along the last axis    -> g2_Add (a broadcast: General), then act's chain
Each kernel is launched with MLX's host logic (unary.py, binary.py); a python scalar becomes a one-element array
of the input's dtype, as MLX's weak scalars do.
"""

from __future__ import annotations

import math

import torch

from ..op import AnchorOp, Prepared, register
from .binary import binary_launch
from .launch import FLOATS, in_order
from .unary import unary_launch


class Chain:
    """Allocates a chain's intermediates and records its launches in order."""

    def __init__(self, backend: str):
        self.backend = backend
        self.launches: list = []
        self.kernels: tuple[str, ...] = ()

    def _add(self, prepared: Prepared) -> torch.Tensor:
        self.launches.append(prepared.launch)
        self.kernels += prepared.kernels
        return prepared.out

    def unary(self, op: str, x: torch.Tensor) -> torch.Tensor:
        return self._add(unary_launch(self.backend, op, x, torch.empty_like(x)))

    def binary(self, op: str, a: torch.Tensor | float, b: torch.Tensor | float) -> torch.Tensor:
        like = a if isinstance(a, torch.Tensor) else b
        a, b = (v if isinstance(v, torch.Tensor) else torch.full((1,), v, dtype=like.dtype, device=like.device)
                for v in (a, b))
        a, b = torch.broadcast_tensors(a, b)
        return self._add(binary_launch(self.backend, op, a, b, torch.empty(a.shape, dtype=like.dtype,
                                                                           device=like.device)))

    def done(self, out: torch.Tensor) -> Prepared:
        return Prepared(in_order(*self.launches), out, self.kernels)


def silu(chain: Chain, x: torch.Tensor) -> torch.Tensor:
    return chain.binary("Multiply", x, chain.unary("Sigmoid", x))


def gelu(chain: Chain, x: torch.Tensor) -> torch.Tensor:
    phi = chain.binary("Add", 1.0, chain.unary("Erf", chain.binary("Divide", x, math.sqrt(2))))
    return chain.binary("Divide", chain.binary("Multiply", x, phi), 2.0)


ACTIVATIONS = {"none": lambda chain, x: x, "sigmoid": lambda chain, x: chain.unary("Sigmoid", x),
               "silu": silu, "gelu": gelu}


def prepare_silu(backend: str, x: torch.Tensor) -> Prepared:
    chain = Chain(backend)
    return chain.done(silu(chain, x))


def prepare_gelu(backend: str, x: torch.Tensor) -> Prepared:
    chain = Chain(backend)
    return chain.done(gelu(chain, x))


def prepare_swiglu(backend: str, a: torch.Tensor, b: torch.Tensor) -> Prepared:
    chain = Chain(backend)
    return chain.done(chain.binary("Multiply", silu(chain, a), b))


def prepare_bias_act(backend: str, x: torch.Tensor, bias: torch.Tensor, act: str = "none") -> Prepared:
    if act not in ACTIVATIONS:
        raise ValueError(f"mlx bias_act chain: act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    if bias.dim() != 1 or bias.shape[0] != x.shape[-1]:
        raise ValueError("mlx bias_act chain: bias runs along the last axis (a Linear's bias)")
    chain = Chain(backend)
    return chain.done(ACTIVATIONS[act](chain, chain.binary("Add", x, bias)))


def _chain_op(name: str, family: str, prepare, doc: str) -> AnchorOp:
    return register(AnchorOp(name=name, anchor="mlx", family=family, dtypes=FLOATS, prepare_fn=prepare,
                             doc=doc + " (eager chain; see mpskernels.anchors.mlx.chains)"))


SILU = _chain_op("mlx.silu_chain", "silu", prepare_silu,
                 "mlx.nn.silu's body x * sigmoid(x): unary.cpp Sigmoid then binary.cpp Multiply (vv)")
GELU = _chain_op("mlx.gelu_chain", "gelu", prepare_gelu,
                 "mlx.nn.gelu's body x * (1 + erf(x / sqrt(2))) / 2 (exact GELU): Divide (vs), Erf, Add (sv), "
                 "Multiply (vv), Divide (vs)")
SWIGLU = _chain_op("mlx.swiglu_chain", "swiglu", prepare_swiglu,
                   "silu(a) * b as mlx-lm's MLP writes it: Sigmoid, Multiply (vv), Multiply (vv)")
BIAS_ACT = _chain_op("mlx.bias_act_chain", "bias_act", prepare_bias_act,
                     "act(x + bias) with bias along the last axis: binary.cpp Add as a General broadcast (g2), "
                     "then the activation's chain (act: none, sigmoid, silu, gelu)")
