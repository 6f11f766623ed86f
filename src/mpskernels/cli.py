"""The `mpskernels` command line."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(verbose=args.verbose)


def _doctor(args: argparse.Namespace) -> int:
    from .checkup import doctor

    return doctor(as_json=args.json)


def _selftest(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from .selftest import run_selftest
    from .selftest_report import write_all

    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")] if args.dtypes else None
    families = args.families.split(",") if args.families else None
    try:
        report = run_selftest(families, dtypes, run_optimize=not args.no_optimize, progress=print)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    written = write_all(report, Path(args.out))
    print(f"\n{'selftest passed' if report.ok else 'selftest FAILED'}: {sum(c.ok for c in report.cases)} of "
          f"{len(report.cases)} cases correct; {report.mode}")
    print("report: " + ", ".join(str(p) for p in written) + " (please attach selftest.md and selftest.json to an "
          "issue at the project's tracker)")
    return 0 if report.ok else 1


def _emulate(args: argparse.Namespace) -> int:
    from .emulator import MSLCompileError, compile_file

    try:
        if args.check_address_spaces:
            from .msl.address_spaces import check_address_spaces

            check_address_spaces(args.file)
            print(f"{args.file}: address spaces check out (clang)")
        start = time.perf_counter()
        lib = compile_file(args.file)
        took = time.perf_counter() - start
    except MSLCompileError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.file}: {len(lib.kernels)} kernel(s), compiled for the CPU emulator in {took:.1f}s")
    for c in lib.function_constants.values():
        print(f"  function constant {c.index}: {c.type_text} {c.name}")
    for name, k in lib.kernels.items():
        path = "fibers" if k.uses_fibers else "plain loop (no barrier or collective)"
        print(f"  {name}  ({k.function}, {path})")
        for p in k.params:
            role = f"builtin {p.builtin}" if p.role == "builtin" else f"{p.role}({p.index})"
            cond = f" if {p.condition}" if p.condition else ""
            print(f"      {role:<40} {p.type_text} {p.name}{cond}")
    return 0


# Optional packages the commands import, and the extra that installs each.
EXTRAS = {"rich": "bench", "matplotlib": "bench", "anthropic": "generate", "openai": "openai",
          "transformers": "models"}


def missing_package(e: ModuleNotFoundError, command: str) -> str:
    """One line for an optional package that is not installed, naming the extra that installs it."""
    top = (e.name or "").split(".")[0]
    extra = "generate" if top == "rich" and command == "generate" else EXTRAS.get(top)
    if extra is None:
        return f"mpskernels {command}: the package {top!r} is not installed ({e})"
    return f"mpskernels {command}: needs the optional package {top!r}: pip install 'mpskernels[{extra}]'"


def missing_compiler(args: argparse.Namespace) -> str | None:
    """Why a command that compiles kernels for the emulator cannot run here (no C++ compiler, no clang), or None."""
    if args.command == "emulate" and args.check_address_spaces:
        from .msl.address_spaces import clang

        if clang() is None:
            return "mpskernels emulate --check-address-spaces: needs clang++ on PATH (install clang)"
    if args.command in ("demo", "emulate", "selftest"):
        from .msl.preprocess import compiler

        try:
            compiler()
        except RuntimeError as e:
            return f"mpskernels {args.command}: {e} (install clang or g++)"
    return None


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="mpskernels", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mpskernels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the shipped kernels through the emulator and check them against PyTorch")
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(func=_demo)
    doctor = sub.add_parser("doctor", help="what this machine has, and which backend optimize() would use "
                                           "(exit code 0 when a GPU kernel backend can run)")
    doctor.add_argument("--json", action="store_true", help="the checks as JSON")
    doctor.set_defaults(func=_doctor)
    selftest = sub.add_parser("selftest", help="check every kernel on this machine (and on an Apple GPU time it "
                                               "against PyTorch), run optimize() on a small decoder, write a report")
    selftest.add_argument("--out", default="mpskernels-selftest", help="report folder (default: %(default)s)")
    selftest.add_argument("--families", help="comma-separated kernel families (default: all)")
    selftest.add_argument("--dtypes", help="comma-separated dtypes, e.g. float16,bfloat16 (default: each family's)")
    selftest.add_argument("--no-optimize", action="store_true", help="leave out optimize() on the demo decoder")
    selftest.set_defaults(func=_selftest)
    emulate = sub.add_parser("emulate", help="compile a .metal file for the CPU emulator and list its kernels")
    emulate.add_argument("file")
    emulate.add_argument("--check-address-spaces", action="store_true",
                         help="first compile it with clang keeping device/constant/threadgroup address spaces apart")
    emulate.set_defaults(func=_emulate)
    from .bench.command import add_parser as add_bench

    add_bench(sub)
    from .generation.command import add_parser as add_generate

    add_generate(sub)
    args = parser.parse_args(argv)
    missing = missing_compiler(args)
    if missing:
        print(missing, file=sys.stderr)
        return 1
    try:
        return args.func(args)
    except ModuleNotFoundError as e:
        print(missing_package(e, args.command), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
