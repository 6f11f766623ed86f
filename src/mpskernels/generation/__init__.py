"""Generating Metal kernels with an LLM: `mpskernels generate PROBLEM.py` or, from Python,

    result = mpskernels.generate(MyModule, init_args=(4096,), example_inputs=(x,),
                                 models=["anthropic:MODEL"], out_dir="packs")
    model = mpskernels.optimize(model, kernel_packs=[result.pack])

A model is asked for a Metal kernel and a launch declaration; each candidate is verified in a separate process
(compile, then the shared verifier's checks; timing on a Mac); failures are fed back; the best correct candidate
is kept as a kernel pack. See docs/generate.md.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..packs import class_key
from ..problem import Problem, load_problem, parse_problem
from .loop import Attempt, Events, GenerationConfig, GenerationResult, run_generation
from .providers import (AnthropicProvider, OpenAICompatibleProvider, Provider, ProviderError, RetryPolicy,
                        make_provider)

__all__ = [
    "AnthropicProvider", "Attempt", "GenerationConfig", "GenerationResult", "OpenAICompatibleProvider", "Provider",
    "ProviderError", "RetryPolicy", "generate", "generate_problem", "make_provider", "problem_for_module",
]  # fmt: skip


def generate_problem(problem: str | Path | Problem, models: Sequence[str | Provider], out_dir: str | Path,
                     config: GenerationConfig = GenerationConfig(), on_event: Events | None = None,
                     **provider_options: Any) -> GenerationResult:
    """Generates a kernel for a KernelBench-format problem; models are 'provider:model' specs or Provider objects."""
    if not isinstance(problem, Problem):
        problem = load_problem(problem)
    module_class = class_key(problem.at().namespace["Model"])
    return run_generation(problem, module_class, _providers(models, provider_options), out_dir, config, on_event)


def generate(module_cls: type[nn.Module], init_args: Sequence[Any], example_inputs: Sequence[Any],
             models: Sequence[str | Provider], out_dir: str | Path, config: GenerationConfig = GenerationConfig(),
             on_event: Events | None = None, **provider_options: Any) -> GenerationResult:
    """Generates a kernel for `module_cls(*init_args)` called on `example_inputs`; the pack matches modules of
    `module_cls` in optimize(model, kernel_packs=[...])."""
    problem = problem_for_module(module_cls, init_args, example_inputs, Path(out_dir))
    shapes = ", ".join(str(tuple(t.shape)) if isinstance(t, torch.Tensor) else repr(t) for t in example_inputs)
    shown = (inspect.getsource(module_cls).rstrip() + f"\n\n# Constructed as {module_cls.__name__}"
             f"{tuple(init_args)!r}; forward is called with inputs of shapes {shapes}.\n")
    return run_generation(problem, class_key(module_cls), _providers(models, provider_options), out_dir, config,
                          on_event, shown_source=shown)


def problem_for_module(module_cls: type[nn.Module], init_args: Sequence[Any], example_inputs: Sequence[Any],
                       folder: Path) -> Problem:
    """A KernelBench-format problem for a module class: it imports the class, and its inputs and constructor
    arguments are saved next to it (the verification process runs it in a fresh interpreter, so the class must be
    importable from a module file, not defined in __main__ or a notebook)."""
    module_name, qualname = module_cls.__module__, module_cls.__qualname__
    if module_name == "__main__" or "<locals>" in qualname:
        raise ValueError(f"mpskernels.generate: {qualname} must be importable (defined at the top level of a module "
                         "file, not in __main__ or inside a function); or write a KernelBench problem file and "
                         "use generate_problem()")
    found = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not module_cls:
        raise ValueError(f"mpskernels.generate: {module_name}.{qualname} does not import as the class given")
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{module_cls.__name__}.inputs.pt"
    torch.save({"init": list(init_args), "inputs": list(example_inputs)}, data)
    owner, _, attribute = qualname.rpartition(".")
    source = (f"import torch\nfrom {module_name} import {owner or attribute}\n\n"
              f"Model = {qualname}\n\n_DATA = torch.load({str(data.resolve())!r}, weights_only=True)\n\n\n"
              "def get_inputs():\n    return [t.clone() if isinstance(t, torch.Tensor) else t "
              "for t in _DATA['inputs']]\n\n\n"
              "def get_init_inputs():\n    return list(_DATA['init'])\n")
    return parse_problem(source, name=module_cls.__name__)


def _providers(models: Sequence[str | Provider], options: dict[str, Any]) -> list[Provider]:
    if not models:
        raise ValueError("mpskernels.generate: name at least one model, e.g. 'anthropic:claude-haiku-4-5'")
    return [make_provider(m, **options) if isinstance(m, str) else m for m in models]
