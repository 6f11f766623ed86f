"""Share of eligible modules that optimize() swaps, per test model (run by hand: python benches/coverage.py).

Eligible: the modules mpskernels has or wants kernels for — normalisations, activations, attention blocks and
MLP blocks (by class name and structure). A swapped parent (a gated MLP) covers its children; a swapped child of
the same kind covers its parent (an attention block around the module whose attention call is routed). The models are
the ones the test suite builds (tests/models), with random weights; kernels run on the emulator here.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

import mpskernels
from mpskernels.optimize import swapped_modules

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SKIPPED_LEAVES = (nn.Dropout, nn.Identity, nn.Flatten, nn.Embedding, nn.Linear, nn.AdaptiveAvgPool2d,
                  nn.Conv1d, nn.Conv2d, nn.Conv3d)


def category(module: nn.Module) -> str | None:
    name = type(module).__name__.lower()
    if "norm" in name:
        return "norm"
    if "attention" in name and "output" not in name:
        return "attention"
    if "mlp" in name:
        return "mlp"
    leaf = not list(module.children()) and not list(module.parameters(recurse=False))
    if leaf and not isinstance(module, SKIPPED_LEAVES) and "embedding" not in name and "pool" not in name:
        return "activation"
    return None


def coverage(model: nn.Module, inputs) -> tuple[int, int, list[str]]:
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        mpskernels.optimize(model, example_inputs=inputs)
    swapped = swapped_modules(model)
    kinds = {name: category(module) for name, module in model.named_modules()}
    eligible, covered, missing = 0, 0, []
    for name, module in model.named_modules():
        kind = kinds[name]
        if kind is None:
            continue
        eligible += 1
        # covered: swapped, inside a swapped module, or around a swapped module of its own kind (BertAttention
        # holds the BertSelfAttention whose attention runs the kernel)
        inner = [s for s in swapped if s.startswith(name + ".") and kinds[s] == kind]
        if name in swapped or any(name.startswith(s + ".") for s in swapped if s) or inner:
            covered += 1
        else:
            missing.append(f"{type(module).__name__} ({kind})")
    return eligible, covered, missing


def models():
    from models.test_torch_models import resnet, unet

    from mpskernels.demo import TinyDecoder

    out = {"demo decoder": lambda: (TinyDecoder().eval(), (torch.randint(0, 128, (1, 9)),)),
           "resnet block": resnet, "unet block": unet}
    if importlib.util.find_spec("transformers") is None:
        print("(transformers is not installed: its models are left out)")
    else:
        from models.test_transformers_models import bert, gpt2, llama, vit

        out.update({"llama (transformers)": llama, "gpt2 (transformers)": gpt2, "bert (transformers)": bert,
                    "vit (transformers)": vit})
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help says what it does
    print(f"{'model':<22} {'eligible':>8} {'swapped':>8} {'share':>6}  not swapped")
    for name, build in models().items():
        torch.manual_seed(0)
        model, inputs = build()
        eligible, covered, missing = coverage(model.eval(), inputs)
        counts: dict[str, int] = {}
        for m in missing:
            counts[m] = counts.get(m, 0) + 1
        rest = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "-"
        print(f"{name:<22} {eligible:>8} {covered:>8} {covered / max(eligible, 1):>6.0%}  {rest}")


if __name__ == "__main__":
    main()
