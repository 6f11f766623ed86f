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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mpskernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the shipped kernels through the emulator and check them against PyTorch")
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(func=_demo)
    doctor = sub.add_parser("doctor", help="what this machine has, and which backend optimize() would use "
                                           "(exit code 0 when a GPU kernel backend can run)")
    doctor.add_argument("--json", action="store_true", help="the checks as JSON")
    doctor.set_defaults(func=_doctor)
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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
