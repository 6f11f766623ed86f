"""mpskernels: faster PyTorch inference on Apple GPUs with Metal kernels, tested everywhere through an MSL emulator.

Importing the package registers its ops as torch.ops.mpskernels.<name>.
"""

from . import registry
from .optimize import OptimizeConfig, optimize, restore
from .runtime import use_backend

__version__ = "0.1.0"

__all__ = ["OptimizeConfig", "optimize", "registry", "restore", "use_backend"]
