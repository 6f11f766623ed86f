"""MLX's Metal kernels as anchor ops: each module holds the host logic of one of MLX's host files
(mlx/backend/metal/*.cpp) in front of the kernels an instantiation file in anchors/metal/ names; importing this
package registers them all (mpskernels.anchors.REGISTRY, by family with for_family)."""

from . import attention, binary, chains, gemv, quantized, softmax, unary

__all__ = ["attention", "binary", "chains", "gemv", "quantized", "softmax", "unary"]
