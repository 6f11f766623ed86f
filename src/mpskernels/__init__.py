"""mpskernels: faster PyTorch inference on Apple GPUs with Metal kernels, tested everywhere through an MSL emulator.

Importing the package registers its ops as torch.ops.mpskernels.<name>.
"""

from . import registry
from .optimize import OptimizeConfig, optimize, restore
from .quantize import quantize
from .runtime import use_backend

__version__ = "0.1.0"

__all__ = ["OptimizeConfig", "doctor", "generate", "optimize", "quantize", "registry", "restore", "use_backend"]


def doctor(as_json: bool = False) -> int:
    """Prints what this machine has (OS, chip, torch and MPS, each kernel backend, the compilers, the cache) and which
    backend optimize() would use; returns 0 when a GPU kernel backend can run here, else 1. See mpskernels.checkup."""
    from .checkup import doctor as run

    return run(as_json)


def generate(module_cls, init_args, example_inputs, models, out_dir, config=None, on_event=None, **provider_options):
    """Asks an LLM for a Metal kernel for `module_cls(*init_args)` called on `example_inputs`, verifies every answer
    and keeps the best correct one as a kernel pack for optimize(model, kernel_packs=[...]).
    See mpskernels.generation.generate and docs/generate.md."""
    from .generation import GenerationConfig
    from .generation import generate as run

    return run(module_cls, init_args, example_inputs, models, out_dir, config or GenerationConfig(), on_event,
               **provider_options)
