"""The anchors: the Metal kernels Mac users already run (PyTorch's MPS kernels, MLX's), compiled unmodified from
their installed or downloaded sources and launched with their own host parameters, so ours can be checked and
measured against them through the same emulator and NVIDIA lane."""

from .library import load
from .op import REGISTRY, AnchorOp, Prepared, for_family, register
from .sources import AnchorSourceError, mlx_include_dir, torch_include_dir

__all__ = ["REGISTRY", "AnchorOp", "AnchorSourceError", "Prepared", "for_family", "load", "register", "mlx_include_dir", "torch_include_dir"]
