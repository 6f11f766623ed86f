"""Run Metal Shading Language kernels on the CPU.

    lib = mpskernels.emulator.compile_file("metal/softmax.metal")
    lib.softmax_float(x, out, n, threads=(rows * 32,), group_size=(32,))
"""

from ..msl.errors import DispatchError, KernelExecutionError, MSLCompileError, MSLError
from .library import Kernel, KernelInfo, Library, compile_file, compile_source

__all__ = [
    "DispatchError", "Kernel", "KernelExecutionError", "KernelInfo", "Library", "MSLCompileError", "MSLError",
    "compile_file", "compile_source",
]  # fmt: skip
