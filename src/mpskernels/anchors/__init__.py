"""The anchors: the Metal kernels Mac users already run (PyTorch's MPS kernels, MLX's), compiled unmodified from
their installed or downloaded sources and launched with their own host parameters, so ours can be checked and
measured against them through the same emulator and NVIDIA lane. Importing the package registers every anchor op
(REGISTRY; for_family(name) lists those doing what one of our kernel families does)."""

from .library import load
from .op import REGISTRY, AnchorOp, Prepared, for_family, register
from .sources import AnchorSourceError, mlx_include_dir, torch_include_dir

from . import mlx, torch_mps  # noqa: E402,F401  (registers the ops; they need the names above)

__all__ = ["REGISTRY", "AnchorOp", "AnchorSourceError", "Prepared", "for_family", "load", "mlx", "mlx_include_dir",
           "register", "torch_include_dir", "torch_mps"]
