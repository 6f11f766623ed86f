"""`mpskernels generate PROBLEM.py`: the command line of the generation loop.

Exit status: 0 when a correct kernel was kept; 1 when no attempt produced one (or every request failed);
2 for bad arguments (no such problem file, no API key, an unknown provider).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..problem import ProblemError, load_problem
from ..verify import VerifyOptions
from .loop import GenerationConfig
from .providers import ProviderError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="ask an LLM for a Metal kernel for a KernelBench-format problem, verify it, "
                                        "keep the best as a kernel pack", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problem", help="a KernelBench-format problem file (Model, get_inputs, get_init_inputs)")
    p.add_argument("--model", action="append", dest="models", metavar="PROVIDER:MODEL",
                   help="e.g. anthropic:claude-haiku-4-5 or openai-compatible:some-model (repeatable: a swarm); "
                        "default: $MPSKERNELS_MODEL")
    p.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                   help="US dollars per million input and output tokens, for cost records of models the built-in "
                        "price table lacks (repeatable)")
    p.add_argument("--samples", type=int, default=1, help="independent conversations per model (default: 1)")
    p.add_argument("--attempts", type=int, default=5, help="attempts per conversation (default: 5)")
    p.add_argument("--out", default="kernel-packs", metavar="DIR",
                   help="the pack is written to DIR/<problem>/pack (default: %(default)s)")
    p.add_argument("--base-url", help="the provider's API base URL (else ANTHROPIC_BASE_URL / OPENAI_BASE_URL)")
    p.add_argument("--cuda-reference", type=Path, metavar="FILE", help="a CUDA implementation to show the model")
    p.add_argument("--profile", type=Path, metavar="FILE", help="profiling data for the module to show the model")
    p.add_argument("--budget", type=int, default=GenerationConfig.emulator_budget, metavar="ELEMENTS",
                   help="emulator verification sizes: inputs + parameters at most this many elements")
    p.add_argument("--timeout", type=float, default=GenerationConfig.timeout_s, metavar="SECONDS",
                   help="limit for one candidate's verification (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=GenerationConfig.max_tokens)
    p.add_argument("--quick", action="store_true", help="verify with one seed and fewer input distributions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import generate_problem

    try:
        problem = load_problem(args.problem)
    except ProblemError as e:
        print(f"mpskernels generate: {e}", file=sys.stderr)
        return 2
    try:
        extras = {name: path.read_text() for name, path in
                  (("cuda_reference", args.cuda_reference), ("profile", args.profile)) if path is not None}
    except OSError as e:
        print(f"mpskernels generate: {e}", file=sys.stderr)
        return 2
    try:
        prices = dict(_price(p) for p in args.price)
    except ValueError as e:
        print(f"mpskernels generate: {e}", file=sys.stderr)
        return 2
    verify = VerifyOptions(seeds=(0,), distributions=("as-given", "normal", "large")) if args.quick \
        else VerifyOptions()
    config = GenerationConfig(attempts=args.attempts, samples=args.samples, max_tokens=args.max_tokens,
                              emulator_budget=args.budget, timeout_s=args.timeout, verify=verify,
                              backend=_backend(), prices=prices, **extras)
    models = args.models or ([os.environ["MPSKERNELS_MODEL"]] if os.environ.get("MPSKERNELS_MODEL") else [])
    if not models:
        print("mpskernels generate: name a model with --model PROVIDER:MODEL (or set MPSKERNELS_MODEL)",
              file=sys.stderr)
        return 2
    provider_options = {"base_url": args.base_url} if args.base_url else {}
    try:
        result = generate_problem(problem, models, args.out, config, on_event=_printer(), **provider_options)
    except ProviderError as e:
        print(f"mpskernels generate: {e}", file=sys.stderr)
        return 2
    return 0 if result.pack is not None else 1


def _price(text: str) -> tuple[str, tuple[float, float]]:
    model, _, numbers = text.partition("=")
    try:
        per_in, per_out = (float(v) for v in numbers.split(","))
    except ValueError:
        raise ValueError(f"--price {text!r}: write MODEL=IN,OUT in dollars per million tokens") from None
    return model, (per_in, per_out)


def _backend() -> str:
    import torch

    return "metal" if torch.backends.mps.is_available() else "emulator"


def _printer():
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)  # soft wrap: a log line stays one line when piped

    def show(message: str, attempt) -> None:
        style = None if attempt is None else "green" if attempt.correct else "yellow"
        console.print(message, style=style, markup=False)

    return show
