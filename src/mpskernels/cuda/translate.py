"""Turn a parsed Metal translation unit into CUDA source for NVRTC (compiled with -default-device, so every
unannotated function is a device function).

Like the emulator's transform, edits are made in place on the preprocessed text and never move a line, so NVRTC's
errors point at `.metal` lines. What changes for CUDA:
  - statement-level `threadgroup` variables become `__shared__`; other address spaces are erased;
  - MSL type names are renamed (names.py) so they cannot clash with CUDA's float4, uint3, half;
  - function constants become compile-time constants (one compile per specialisation);
  - instantiation statements are dropped: each host name gets an `extern "C" __global__` entry after the source
    that calls the instantiated kernel directly, binding each parameter by its role (csrc/cuda/mtlcuda/dispatch.cuh).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..msl.errors import Diagnostic, MSLCompileError
from ..msl.lexer import Token, matching
from ..msl.parse import ADDRESS_SPACES, BUILTINS, Entry, FunctionConstant, Program
from ..msl.transform import (_INT_TYPES, Edits, Specialization, const_beside, is_static_constant_variable,
                              rewrite_tokens)
from .names import rename, rename_in

SHIM_HEADER = "mtlcuda/shim.cuh"
DEFAULT_MAX_THREADS = 1024  # Metal's and CUDA's limit: every entry is compiled to launch with up to this many

# thread_position_in_grid -> ::mtlcuda::kThreadPositionInGrid (dispatch.cuh's Builtin enum)
BUILTIN_CODES = {name: "::mtlcuda::k" + "".join(w.title() for w in name.split("_")) for name in BUILTINS}

# Builtins that only locate a thread. An entry taking no others, in a translation unit with no threadgroup memory,
# barrier or SIMD/quad function, has threads that never meet, so padding threads past a ragged grid's edge (which
# return at once) cannot change what the others compute.
POSITION_BUILTINS = frozenset({"thread_position_in_grid", "threads_per_grid", "thread_position_in_threadgroup",
                               "threadgroup_position_in_grid", "threadgroups_per_grid", "threads_per_threadgroup",
                               "dispatch_threads_per_threadgroup"})
_COOPERATION = re.compile(r"(simd_|quad_|simdgroup|threadgroup_barrier$|threadgroup$)")


def threads_cooperate(program: Program) -> bool:
    """Whether anything in the unit (headers included) lets a thread see another's work or wait for it."""
    return any(t.kind == "id" and _COOPERATION.match(t.text) for t in program.tokens)


# GNU line markers from the preprocessor (`# 12 "file" 1`) as #line directives, which every compiler accepts.
_LINE_MARKER = re.compile(r'^#[ \t]+(\d+)[ \t]+("(?:[^"\\]|\\.)*")(?:[ \t]+\d+)*[ \t]*$', re.MULTILINE)


def line_directive(m: re.Match) -> str:
    # `# 0 "<built-in>"` markers have no #line equivalent (line numbers start at 1): keep the line, drop the marker.
    return "" if m.group(1) == "0" else f"#line {m.group(1)} {m.group(2)}"


@dataclass(frozen=True)
class CudaEntry:
    """One host name's generated `__global__` function and the shape of its argument list."""

    host_name: str
    symbol: str
    buffer_slots: int  # one 64-bit word per [[buffer(i)]], i < buffer_slots
    threadgroup_slots: int  # one 32-bit dynamic shared memory offset per [[threadgroup(i)]]
    max_threads: int  # max_total_threads_per_threadgroup, or DEFAULT_MAX_THREADS
    inline_slots: tuple[int, ...] = ()  # buffer slots declared `constant T&`: a Scalar may be passed inline there
    independent_threads: bool = False  # threads never meet: a ragged grid may run as one launch (launch.py)


@dataclass(frozen=True)
class CudaSource:
    text: str
    entries: dict[str, CudaEntry]  # by host name


def constant_initializer(fc: FunctionConstant, value: object) -> tuple[str, str]:
    """(type, initializer) of a function constant's compile-time value, in CUDA spelling."""
    type_name = " ".join(w for w in fc.type_text.split() if w != "const")
    if type_name == "bool":
        return type_name, "true" if value else "false"
    if type_name in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"function constant '{fc.name}' is {type_name}: give an int, not {value!r}")
        cuda_type = rename(type_name)
        return cuda_type, f"{cuda_type}({value}LL)" if value < 0 else f"{cuda_type}({value}ULL)"
    if type_name == "float":
        v = float(value)
        if math.isnan(v):
            return "float", "__int_as_float(0x7fc00000)"
        if math.isinf(v):
            return "float", "__int_as_float(0x7f800000)" if v > 0 else "__int_as_float(0xff800000)"
        return "float", v.hex() + "f"
    if type_name in ("half", "bfloat"):
        import torch  # the exact 16-bit pattern, rounded as the emulator's conversion rounds

        dtype = torch.float16 if type_name == "half" else torch.bfloat16
        bits = int(torch.tensor(float(value), dtype=dtype).view(torch.int16).item()) & 0xFFFF
        return rename(type_name), f"{rename(type_name)}((unsigned short){bits:#06x}u, ::mtl::bits_tag{{}})"
    raise MSLCompileError(
        Diagnostic(fc.file, fc.line, f"function constant '{fc.name}' has type '{fc.type_text}'; the CUDA "
                                     f"translation supports bool, integer and floating scalar constants")
    )


def namespace_scope_tokens(tokens: list[Token]) -> list[bool]:
    """For each token, whether it stands at namespace scope (outside every function, class and initializer)."""
    out = []
    stack: list[bool] = []  # True for namespace / extern "C" braces
    for k, t in enumerate(tokens):
        out.append(all(stack))
        if t.text == "{":
            j = k - 1
            while j >= 0 and tokens[j].kind == "id" and tokens[j].text not in ("namespace", "inline"):
                j -= 1  # the namespace's name (possibly a::b)
                if j >= 0 and tokens[j].text == "::":
                    j -= 1
            opens_namespace = j >= 0 and tokens[j].text == "namespace"
            opens_extern = k >= 2 and tokens[k - 2].text == "extern" and tokens[k - 1].kind == "str"
            stack.append(opens_namespace or opens_extern)
        elif t.text == "}" and stack:
            stack.pop()
    return out


def to_cuda(text: str, program: Program, spec: Specialization) -> CudaSource:
    tokens = program.tokens
    edits = Edits(text)
    values = dict(spec.values)
    unknown = set(values) - set(program.constants)
    if unknown:
        raise ValueError(f"unknown function constant(s): {', '.join(sorted(unknown))}")

    def span(first: int, last: int) -> tuple[int, int]:
        return tokens[first].start, tokens[last].end

    for start, end in program.instantiations:
        edits.replace(*span(start, end), "")  # the generated entries instantiate what they call
    for fc in program.constants.values():
        if fc.name in values:
            type_name, init = constant_initializer(fc, values[fc.name])
        else:
            type_name = rename(" ".join(w for w in fc.type_text.split() if w != "const"))
            init = f"{type_name}()"  # undefined: reads as zero; is_function_constant_defined says false
        edits.replace(*span(*fc.statement), f"static constexpr {type_name} {fc.name} = {init};")
    for first, last in program.duplicate_members + program.duplicate_overloads:
        edits.replace(*span(first, last), "")
    shared_starts = {var.statement[0] for var in program.threadgroup_variables}
    for var in program.threadgroup_variables:
        for first, last in initializer_spans(tokens, var):
            edits.replace(*span(first, last), "")  # CUDA allows no initializer on __shared__; Metal does not run it

    at_namespace_scope = namespace_scope_tokens(tokens)
    constructor_qualifiers = set(program.constructor_qualifiers)

    def identifier(i: int) -> str | None:
        text = tokens[i].text
        if text == "constant":
            return "" if i in constructor_qualifiers else constant_keyword(tokens, i, at_namespace_scope[i])
        if text == "threadgroup" and i in shared_starts:
            return "__shared__"
        if text in ADDRESS_SPACES:
            return ""
        return rename(text) if rename(text) != text else None

    rewrite_tokens(edits, program, values, identifier, number=rename_in)

    body = _LINE_MARKER.sub(line_directive, edits.apply())
    cooperate = threads_cooperate(program)
    entries = {e.host_name: cuda_entry(n, e, cooperate) for n, e in enumerate(program.entries)}
    wrappers = "\n".join(entry_function(cuda, e) for cuda, e in zip(entries.values(), program.entries))
    header = f'#include "{SHIM_HEADER}"\n'
    trailer = f'\n#line 1 "<mpskernels cuda entries>"\n{wrappers}\n'
    return CudaSource(header + body + trailer, entries)


def initializer_spans(tokens: list[Token], var) -> list[tuple[int, int]]:
    """Token spans of the initializers in a threadgroup variable's statement (`= {0}` or `{0}`)."""
    spans = []
    first, last = var.statement
    k = first
    while k < last:
        t = tokens[k].text
        if t in ("(", "["):
            k = matching(tokens, k) + 1
            continue
        if t in ("=", "{"):
            end = k
            while end < last and tokens[end].text != ",":
                end = matching(tokens, end) + 1 if tokens[end].text in ("(", "[", "{") else end + 1
            spans.append((k, end - 1))
            k = end
            continue
        k += 1
    return spans


def constant_keyword(tokens: list[Token], i: int, namespace_scope: bool) -> str:
    """What MSL's `constant` becomes: a const qualifier on pointers and references, constexpr on variables."""
    near_const = const_beside(tokens, i)
    if is_static_constant_variable(tokens, i):
        return "constexpr"
    starts_declaration = i == 0 or tokens[i - 1].text in (";", "{", "}", "static") or tokens[i - 1].kind == "directive"
    if namespace_scope and starts_declaration:
        # A program-scope variable: device code may read constexpr host variables, not plain const ones.
        k = i
        while k < len(tokens) and tokens[k].text not in (";", "{"):
            if tokens[k].text == "constexpr":
                return ""
            k += 1
        return "static constexpr"
    return "" if near_const else "const"


def entry_symbol(n: int, host_name: str) -> str:
    """The CUDA entry's name: unique by its index, readable by the Metal host name after it, so that profilers
    (`ncu -k regex:quantized_qmv`) and ptxas logs name the kernel; characters a C identifier cannot hold become _."""
    return f"mtl_entry_{n}_" + re.sub(r"[^A-Za-z0-9_]", "_", host_name)


def cuda_entry(n: int, entry: Entry, threads_may_cooperate: bool = True) -> CudaEntry:
    params = entry.kernel.params
    builtins = {p.builtin for p in params if p.role == "builtin"}
    buffers = [p.index for p in params if p.role == "buffer"]
    shared = [p.index for p in params if p.role == "threadgroup"]
    return CudaEntry(
        host_name=entry.host_name,
        symbol=entry_symbol(n, entry.host_name),
        buffer_slots=max(buffers) + 1 if buffers else 0,
        threadgroup_slots=max(shared) + 1 if shared else 0,
        max_threads=entry.max_threads or DEFAULT_MAX_THREADS,
        inline_slots=tuple(p.index for p in params if p.role == "buffer" and takes_inline_scalar(p.type_text)),
        independent_threads=not threads_may_cooperate and not shared and builtins <= POSITION_BUILTINS,
    )


def takes_inline_scalar(type_text: str) -> bool:
    """`constant T&` (a read-only reference): the CUDA entry can bind it to a scalar's bytes."""
    words = type_text.split()
    return "&" in words and "*" not in words and ("constant" in words or "const" in words)


GEOMETRY_ARGS = ("gx", "gy", "gz", "nx", "ny", "nz", "ox", "oy", "oz")


def entry_function(cuda: CudaEntry, entry: Entry) -> str:
    """The extern "C" __global__ function for one host name: binds every parameter by role and calls the kernel."""
    function = rename_in(entry.cpp_function) if entry.alias_site is not None else "::" + entry.kernel.qualified_name
    address = rename_in(entry.address) if entry.alias_site is not None else "&" + function
    signature = [f"::mtlcuda::Word w{i}" for i in range(cuda.buffer_slots)]
    signature += [f"unsigned t{i}" for i in range(cuda.threadgroup_slots)]
    signature += ["unsigned inline_mask"] + [f"unsigned {g}" for g in GEOMETRY_ARGS]
    args = []
    for k, p in enumerate(entry.kernel.params):
        ptype = f"::mtlcuda::param_t<F, {k}>"
        if p.role == "buffer":
            args.append(f"::mtlcuda::bind_buffer<{ptype}>(w{p.index}, (inline_mask >> {p.index}) & 1u)")
        elif p.role == "threadgroup":
            args.append(f"::mtlcuda::bind_threadgroup<{ptype}>(t{p.index})")
        else:
            args.append(f"::mtlcuda::bind_builtin<{ptype}>({BUILTIN_CODES[p.builtin]}, g)")
    lines = [
        f"// {entry.host_name}",
        f'extern "C" __global__ void __launch_bounds__({cuda.max_threads}) {cuda.symbol}({", ".join(signature)}) {{',
        f"  typedef decltype({address}) F;",
        "  const ::mtlcuda::Geometry g = {{gx, gy, gz}, {nx, ny, nz}, {ox, oy, oz}};",
        "  (void)g;",
        *(["  if (!::mtlcuda::inside_grid(g)) return;  // padding of a one-launch ragged grid"]
          if cuda.independent_threads else []),
        f"  {function}({', '.join(args)});",
        "}",
    ]
    code = "\n".join(lines)
    for name in reversed(entry.namespace):  # the instantiation's own namespace: its template arguments resolve there
        code = f"namespace {name} {{\n{code}\n}}"
    return code
