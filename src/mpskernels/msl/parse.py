"""Find what a Metal translation unit declares: kernels and their parameter roles, explicit instantiations with
host names, function constants and statement-level threadgroup variables.

Works on tokens of the preprocessed source and never parses C++ types: parameter types are left to the C++
compiler, which sees the kernel's real (instantiated) signature. Roles are read from each kernel's definition,
because explicit instantiations may list bare types without attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import coverage
from .errors import Diagnostic, MSLCompileError
from .evaluate import NotConstant, evaluate
from .lexer import Token, matching
from .scopes import CLASS, NAMESPACE, scope_kinds

ADDRESS_SPACES = ("device", "constant", "thread", "threadgroup", "threadgroup_imageblock", "ray_data", "object_data")

# Builtin attribute -> whether MSL allows a vector (2-D/3-D) declaration of it.
BUILTINS = {
    "thread_position_in_grid": True,
    "thread_position_in_threadgroup": True,
    "threadgroup_position_in_grid": True,
    "threads_per_threadgroup": True,
    "threads_per_grid": True,
    "threadgroups_per_grid": True,
    "dispatch_threads_per_threadgroup": True,
    "thread_index_in_threadgroup": False,
    "thread_index_in_simdgroup": False,
    "simdgroup_index_in_threadgroup": False,
    "threads_per_simdgroup": False,
    "simdgroups_per_threadgroup": False,
    "thread_index_in_quadgroup": False,
    "quadgroup_index_in_threadgroup": False,
    "quadgroups_per_threadgroup": False,
    "thread_execution_width": False,
    "dispatch_simdgroups_per_threadgroup": False,
    "dispatch_quadgroups_per_threadgroup": False,
}

# Identifiers whose presence means a kernel needs the fiber scheduler (barriers and collectives).
SYNC_PREFIXES = ("simd_", "quad_", "simdgroup_")
SYNC_NAMES = {"threadgroup_barrier", "make_filled_simdgroup_matrix"}


def is_sync_identifier(name: str) -> bool:
    return name in SYNC_NAMES or name.startswith(SYNC_PREFIXES) or "simdgroup_matrix" in name


@dataclass(frozen=True)
class Attribute:
    name: str
    args: tuple[Token, ...]
    start: int  # token index of the first '['
    end: int  # token index of the last ']'
    name_token: Token

    def int_arg(self, env: dict[str, int] | None = None) -> int:
        """The argument as an integer constant expression over literals and the names in env."""
        try:
            return evaluate(self.args, env)
        except NotConstant as e:
            text = " ".join(t.text for t in self.args)
            raise error(self.name_token, f"[[{self.name}({text})]] needs an integer constant expression the "
                                         f"front end can evaluate: {e}") from None


@dataclass(frozen=True)
class Param:
    name: str
    role: str  # "buffer", "threadgroup" or "builtin"
    index: int  # buffer or threadgroup slot; unused for builtins
    builtin: str | None
    type_text: str
    condition: str | None  # function constant that decides whether the buffer is bound
    file: str
    line: int


@dataclass
class KernelDef:
    name: str
    qualified_name: str
    params: list[Param]
    is_template: bool
    max_threads: int | None
    file: str
    line: int
    body: tuple[int, int]  # token indices of { and }
    uses_sync: bool = True
    # (name, default argument tokens) of each template parameter, for template-dependent attributes
    template_params: tuple[tuple[str, tuple[Token, ...]], ...] = ()
    max_threads_attribute: "Attribute | None" = None  # when its value depends on the template arguments
    host_name: str | None = None  # `[[host_name("x")]] kernel void f(...)`: launched as x


@dataclass(frozen=True)
class Entry:
    """A kernel the host can launch: a host name bound to a kernel definition (or an instantiation of one)."""

    host_name: str
    kernel: KernelDef
    cpp_function: str  # C++ expression naming the function, e.g. "ns::softmax<float, 4>"
    alias_site: int | None  # token index of the instantiation statement, if any
    namespace: tuple[str, ...] = ()  # where the instantiation statement stands
    max_threads: int | None = None  # max_total_threads_per_threadgroup of this instantiation
    # C++ function-pointer type that picks the instantiation when its template arguments are deduced from the
    # parameter list (`template [[host_name("f")]] [[kernel]] void f(device float*, uint);`); cpp_function is
    # then the bare (qualified) name.
    pointer_type: str | None = None
    parameter_span: tuple[int, int] | None = None  # token span of that parameter list

    @property
    def address(self) -> str:
        """C++ expression for the address of the instantiated kernel."""
        if self.pointer_type is None:
            return f"&{self.cpp_function}"
        return f"static_cast<{self.pointer_type}>(&{self.cpp_function})"


@dataclass(frozen=True)
class FunctionConstant:
    name: str
    type_text: str
    index: int
    statement: tuple[int, int]  # token indices of the declaration
    file: str
    line: int


@dataclass(frozen=True)
class ThreadgroupVariable:
    statement: tuple[int, int]  # token indices from `threadgroup` to `;`
    type_text: str
    declarators: tuple[tuple[str, str], ...]  # (name, array suffix like "[32][8]")
    initialized: tuple[str, ...] = ()  # declarators written with an initializer, which is not run (see parse)


@dataclass
class Program:
    tokens: list[Token]
    kernels: dict[str, KernelDef] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    constants: dict[str, FunctionConstant] = field(default_factory=dict)
    threadgroup_variables: list[ThreadgroupVariable] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    instantiations: list[tuple[int, int]] = field(default_factory=list)  # statements to replace
    # Token index -> how each address-space keyword is modelled (coverage.py); every one has an entry.
    address_space_models: dict[int, str] = field(default_factory=dict)
    # Definitions that differ from an earlier one only by address spaces inside their parameter or template
    # argument types (`f(device T*)` beside `f(thread T*)`, `S<device T*>` beside `S<thread T*>`): one definition
    # once address spaces are erased, so the erasing transforms drop them (the address-space check keeps them).
    duplicate_overloads: list[tuple[int, int]] = field(default_factory=list)
    # `constant` qualifiers of constructors, which the transforms erase (C++ constructors cannot be const)
    constructor_qualifiers: list[int] = field(default_factory=list)
    # Kernel parameters declared as arrays (`constant int64_t strides[3]`): (name token, '[' , last ']')
    array_parameters: list[tuple[int, int, int]] = field(default_factory=list)
    # Member functions that differ from an earlier one only by address-space qualifiers (`f() device` beside
    # `f() thread`): identical once address spaces are erased, so the transform drops them.
    duplicate_members: list[tuple[int, int]] = field(default_factory=list)


_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "sizeof", "alignof", "decltype", "static_assert",
                  "catch", "noexcept", "alignas"}


def erased_text(tokens, skip: frozenset = frozenset()) -> tuple[str, ...]:
    """Token texts with `device`, `thread` and `threadgroup` removed and `constant` read as `const` (except the
    tokens whose `start` is in skip: a constructor's `constant` qualifier, erased like the others)."""
    out = []
    for t in tokens:
        if t.start in skip:
            continue
        if t.text == "constant":
            if out and out[-1] != "const" and out[-1] != ")":
                out.append("const")
        elif t.text not in ADDRESS_SPACES:
            out.append(t.text)
    return tuple(out)


def error(tok: Token, message: str) -> MSLCompileError:
    return MSLCompileError(Diagnostic(tok.file, tok.line, message))


# ------------------------------------------------------------------------------------------------------------------
# Attributes


def is_attribute_start(tokens: list[Token], i: int) -> bool:
    return (
        i + 1 < len(tokens)
        and tokens[i].text == "["
        and tokens[i + 1].text == "["
        and tokens[i].end == tokens[i + 1].start
    )


def read_attributes(tokens: list[Token], i: int) -> tuple[list[Attribute], int]:
    """Reads `[[a, b(x)]]` at tokens[i]; returns its attributes and the index after the closing `]]`."""
    end = matching(tokens, i)
    inner = tokens[i + 2 : end - 1]
    attrs: list[Attribute] = []
    k = 0
    while k < len(inner):
        name_tok = inner[k]
        name = name_tok.text
        k += 1
        while k + 1 < len(inner) and inner[k].text == "::":  # scoped attribute names (clang::, gnu::)
            name += "::" + inner[k + 1].text
            k += 2
        args: tuple[Token, ...] = ()
        if k < len(inner) and inner[k].text == "(":
            close = matching(inner, k)
            args = tuple(inner[k + 1 : close])
            k = close + 1
        attrs.append(Attribute(name, args, i, end, name_tok))
        if k < len(inner) and inner[k].text == ",":
            k += 1
    return attrs, end + 1


def concat_string_literals(args: tuple[Token, ...]) -> str:
    parts = []
    for t in args:
        if t.kind != "str":
            raise error(t, "host_name takes string literals only")
        body = t.text[t.text.index('"') + 1 : -1]
        parts.append(body.encode().decode("unicode_escape"))
    return "".join(parts)


# ------------------------------------------------------------------------------------------------------------------
# Top-level declarations


@dataclass
class Declaration:
    start: int
    end: int  # index of the terminating ';' or the body's closing '}'
    namespace: tuple[str, ...]
    body: tuple[int, int] | None  # function body braces


def split_declarations(tokens: list[Token]) -> list[Declaration]:
    """Splits namespace-scope code into declarations, descending into namespaces and extern "C" blocks."""
    decls: list[Declaration] = []
    scopes: list[str | None] = []  # namespace names; None for extern "C" blocks
    i = 0
    start = 0
    n = len(tokens)

    def current_ns() -> tuple[str, ...]:
        return tuple(s for s in scopes if s)

    while i < n:
        t = tokens[i]
        if t.kind == "directive":
            i += 1
            start = i
            continue
        if t.text in ("(", "["):
            i = matching(tokens, i) + 1
            continue
        if t.text == ";":
            if i > start:
                decls.append(Declaration(start, i, current_ns(), None))
            i += 1
            start = i
            continue
        if t.text == "}":
            if scopes:
                scopes.pop()
            i += 1
            start = i
            continue
        if t.text == "{":
            head = [x.text for x in tokens[start:i]]
            if head and (head[0] == "namespace" or head[:2] == ["inline", "namespace"]):
                scopes.append("::".join(x for x in head if x not in ("inline", "namespace")) or None)
                i += 1
                start = i
                continue
            if head[:1] == ["extern"] and len(head) == 2 and tokens[start + 1].kind == "str":
                scopes.append(None)
                i += 1
                start = i
                continue
            close = matching(tokens, i)
            if is_function_head(tokens, start, i):
                decls.append(Declaration(start, close, current_ns(), (i, close)))
                i = close + 1
                start = i
                continue
            i = close + 1  # class body or braced initializer: the declaration ends at the next ';'
            continue
        i += 1
    return decls


def is_function_head(tokens: list[Token], start: int, brace: int) -> bool:
    """Whether tokens[start:brace] declare a function (so the '{' opens its body)."""
    depth = 0
    saw_params = False
    k0 = start
    if tokens[start].text == "template" and tokens[start + 1].text == "<":
        k0 = matching(tokens, start + 1) + 1  # template parameters may hold `= default` arguments
    for k in range(k0, brace):
        t = tokens[k].text
        if t in ("(", "["):
            if t == "(" and depth == 0:
                saw_params = True
            depth += 1
        elif t in (")", "]"):
            depth -= 1
        elif depth == 0 and t == "=":
            return False
        elif depth == 0 and t in ("struct", "class", "union", "enum") and not saw_params:
            return False
    return saw_params


# ------------------------------------------------------------------------------------------------------------------
# The parser


class Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.program = Program(tokens)
        self.int_constants: dict[str, int] = {}  # program-scope integer constants, for attribute arguments
        self.overloads: dict[str, list[KernelDef]] = {}  # kernel templates by name (overloads share one)
        self.allowed_attributes: dict[int, set[str]] = {}  # attribute list start -> names read there

    def parse(self) -> Program:
        tokens = self.tokens
        self.collect_attributes()
        for decl in split_declarations(tokens):
            first = tokens[decl.start]
            if first.text == "template" and tokens[decl.start + 1].text != "<":
                self.read_instantiation(decl)
            elif decl.body is not None and self.has_kernel_marker(decl.start, decl.body[0]):
                self.read_kernel(decl)
            elif decl.body is None:
                self.read_program_scope_declaration(decl)
        self.find_threadgroup_variables()
        self.find_address_space_overloads()
        self.classify_sync()
        for kernel in self.program.kernels.values():
            if not kernel.is_template:
                self.program.entries.append(Entry(kernel.host_name or kernel.name, kernel, kernel.qualified_name, None,
                                                  max_threads=kernel.max_threads))
        self.check_entries()
        self.check_coverage()
        return self.program

    def check_coverage(self) -> None:
        """Every address-space keyword and attribute is modelled, or the source is refused (coverage.py)."""
        program = self.program
        spans = sorted({(a.start, a.end) for a in program.attributes})
        program.address_space_models = coverage.classify_address_spaces(
            self.tokens, spans, {v.statement[0] for v in program.threadgroup_variables},
            {fc.statement[0] for fc in program.constants.values()})
        coverage.check_attributes(self.tokens, program.attributes, self.allowed_attributes,
                                  {*BUILTINS, "buffer", "threadgroup", "function_constant"})

    def allow(self, attrs: list[Attribute], names: set[str]) -> None:
        for a in attrs:
            self.allowed_attributes.setdefault(a.start, set()).update(names)

    # -- attributes --

    def collect_attributes(self) -> None:
        i = 0
        while i < len(self.tokens):
            if is_attribute_start(self.tokens, i):
                attrs, nxt = read_attributes(self.tokens, i)
                self.program.attributes.extend(attrs)
                i = nxt
            else:
                i += 1

    def attributes_between(self, start: int, end: int) -> list[Attribute]:
        return [a for a in self.program.attributes if start <= a.start and a.end < end]

    def has_kernel_marker(self, start: int, end: int) -> bool:
        if any(self.tokens[k].text == "kernel" for k in range(start, end)):
            return True
        return any(a.name == "kernel" for a in self.attributes_between(start, end))

    def skip_attributes(self, i: int) -> int:
        while is_attribute_start(self.tokens, i):
            i = matching(self.tokens, i) + 1
        return i

    # -- kernels --

    def read_kernel(self, decl: Declaration) -> None:
        tokens = self.tokens
        brace = decl.body[0]
        close_paren = brace - 1
        while tokens[close_paren].text != ")":
            close_paren -= 1
        open_paren = self.opening_paren(close_paren)
        name_tok = tokens[open_paren - 1]
        head = [t.text for t in tokens[decl.start : open_paren]]
        if name_tok.kind != "id":
            raise error(name_tok, "cannot find the kernel's name")
        if "void" not in head:
            raise error(name_tok, f"kernel '{name_tok.text}' must return void")
        is_template = head[0] == "template"
        template_params = self.template_params(decl.start) if is_template else ()
        max_threads, dependent = None, None
        head_attrs = self.attributes_between(decl.start, open_paren)
        self.allow(head_attrs, {"kernel", "max_total_threads_per_threadgroup"} | (set() if is_template else
                                                                                    {"host_name"}))
        host_name = next((concat_string_literals(a.args) for a in head_attrs if a.name == "host_name"), None)
        for a in head_attrs:
            if a.name != "max_total_threads_per_threadgroup":
                continue
            names = {n for n, _ in template_params}
            if names & {t.text for t in a.args}:
                dependent = a  # evaluated per instantiation, with its template arguments
            else:
                max_threads = a.int_arg(self.int_constants)
        params = self.read_params(name_tok.text, open_paren, close_paren)
        qualified = "::".join((*decl.namespace, name_tok.text))
        kernel = KernelDef(
            name=name_tok.text,
            qualified_name=qualified,
            params=params,
            is_template=is_template,
            max_threads=max_threads,
            file=name_tok.file,
            line=name_tok.line,
            body=decl.body,
            template_params=template_params,
            max_threads_attribute=dependent,
            host_name=host_name,
        )
        earlier = self.overloads.setdefault(name_tok.text, [])
        if earlier and not (is_template and all(k.is_template for k in earlier)):
            raise error(name_tok, f"kernel '{name_tok.text}' is defined twice")
        earlier.append(kernel)
        key = name_tok.text if len(earlier) == 1 else f"{name_tok.text}#{len(earlier)}"
        self.program.kernels[key] = kernel

    def template_params(self, start: int) -> tuple[tuple[str, tuple[Token, ...]], ...]:
        """(name, default tokens) of each parameter in `template <...>` at tokens[start]."""
        tokens = self.tokens
        close = matching(tokens, start + 1)
        out = []
        for s, e in self.split_top_level(start + 2, close):
            piece = tokens[s:e]
            eq = next((k for k, t in enumerate(piece) if t.text == "="), len(piece))
            names = [t for t in piece[:eq] if t.kind == "id"]
            out.append((names[-1].text if len(names) > 1 else "", tuple(piece[eq + 1 :])))
        return tuple(out)

    def split_top_level(self, start: int, end: int) -> list[tuple[int, int]]:
        """Comma-separated pieces of tokens[start:end], skipping nested (), [], {} and template <>."""
        tokens = self.tokens
        pieces, k, s = [], start, start
        while k < end:
            t = tokens[k].text
            if t in ("(", "[", "{"):
                k = matching(tokens, k) + 1
                continue
            if t == "<" and k > start and tokens[k - 1].kind == "id":
                try:
                    k = matching(tokens, k) + 1
                    continue
                except Exception:
                    pass
            if t == ",":
                pieces.append((s, k))
                s = k + 1
            k += 1
        if end > s:
            pieces.append((s, end))
        return pieces

    def opening_paren(self, close: int) -> int:
        depth = 0
        for k in range(close, -1, -1):
            t = self.tokens[k].text
            if t == ")":
                depth += 1
            elif t == "(":
                depth -= 1
                if depth == 0:
                    return k
        raise error(self.tokens[close], "unbalanced ')'")

    def read_params(self, kernel: str, open_paren: int, close_paren: int) -> list[Param]:
        tokens = self.tokens
        pieces: list[tuple[int, int]] = []
        k = open_paren + 1
        start = k
        while k < close_paren:
            t = tokens[k].text
            if t in ("(", "["):
                k = matching(tokens, k) + 1
                continue
            if t == "<":
                try:
                    k = matching(tokens, k) + 1
                    continue
                except Exception:
                    pass
            if t == ",":
                pieces.append((start, k))
                start = k + 1
            k += 1
        if k > start:
            pieces.append((start, k))
        if len(pieces) == 1 and [tokens[x].text for x in range(*pieces[0])] == ["void"]:
            pieces = []

        explicit: list[tuple[Param | None, dict]] = []
        for s, e in pieces:
            self.allow(self.attributes_between(s, e), {*BUILTINS, "buffer", "threadgroup", "function_constant"})
            explicit.append(self.read_param(kernel, s, e))
        used = {("buffer", p.index) for p, _ in explicit if p and p.role == "buffer"}
        used |= {("threadgroup", p.index) for p, _ in explicit if p and p.role == "threadgroup"}
        params: list[Param] = []
        for p, implicit in explicit:
            if p is None:
                # No index given: MSL assigns the lowest free index of that kind, in declaration order.
                role = implicit["role"]
                index = 0
                while (role, index) in used:
                    index += 1
                used.add((role, index))
                p = Param(implicit["name"], role, index, None, implicit["type"], implicit["condition"],
                          implicit["file"], implicit["line"])
            params.append(p)
        seen: dict[tuple[str, int], Param] = {}
        for p in params:
            if p.role == "builtin":
                continue
            key = (p.role, p.index)
            if key in seen and not (p.condition or seen[key].condition):
                raise MSLCompileError(
                    Diagnostic(p.file, p.line, f"kernel '{kernel}': [[{p.role}({p.index})]] is used by both "
                                               f"'{seen[key].name}' and '{p.name}'")
                )
            seen[key] = p
        return params

    def read_param(self, kernel: str, s: int, e: int) -> tuple[Param | None, dict]:
        tokens = self.tokens
        attrs = []
        plain: list[Token] = []
        k = s
        while k < e:
            if is_attribute_start(tokens, k):
                a, k = read_attributes(tokens, k)
                attrs.extend(a)
            else:
                plain.append(tokens[k])
                k += 1
        suffix: list[Token] = []  # `constant int64_t strides[3]`: an array parameter is a pointer
        while plain and plain[-1].text == "]":
            depth = 0
            for j in range(len(plain) - 1, -1, -1):
                depth += {"]": 1, "[": -1}.get(plain[j].text, 0)
                if depth == 0:
                    suffix = plain[j:] + suffix
                    plain = plain[:j]
                    break
        is_array = bool(suffix)
        name_tok = next((t for t in reversed(plain) if t.kind == "id"), None)
        if name_tok is None or len(plain) < 2:
            where = tokens[s]
            raise error(where, f"kernel '{kernel}': every parameter needs a type and a name")
        type_toks = plain[: plain.index(name_tok)]
        type_text = " ".join(t.text for t in type_toks) + (" *" if is_array else "")
        words = {t.text for t in type_toks}
        is_indirect = "*" in words or "&" in words or is_array
        if is_array:
            index_of = {t.start: k for k, t in enumerate(tokens[s:e], s)}
            self.program.array_parameters.append(
                (index_of[name_tok.start], index_of[suffix[0].start], matching(tokens, index_of[suffix[0].start])))
        condition = None
        role = index = builtin = None
        for a in attrs:
            if a.name == "buffer":
                role, index = "buffer", a.int_arg(self.int_constants)
            elif a.name == "threadgroup":
                role, index = "threadgroup", a.int_arg(self.int_constants)
            elif a.name == "function_constant":
                condition = "".join(t.text for t in a.args)
            elif a.name in BUILTINS:
                role, builtin = "builtin", a.name
            elif a.name == "maybe_unused":
                continue  # standard C++ attribute: no role of its own
            else:
                raise error(name_tok, f"kernel '{kernel}': parameter '{name_tok.text}' has [[{a.name}]], which the "
                                      f"emulator does not support (compute kernels only)")
        where = dict(file=name_tok.file, line=name_tok.line)
        if role == "builtin":
            if is_indirect or words & set(ADDRESS_SPACES):
                raise error(name_tok, f"kernel '{kernel}': builtin '{name_tok.text}' [[{builtin}]] must be a plain "
                                      f"integer or integer vector")
            return Param(name_tok.text, "builtin", 0, builtin, type_text, None, **where), {}
        if role is None:
            if "threadgroup" in words and is_indirect:
                role = "threadgroup"
            elif words & {"device", "constant"} and is_indirect:
                role = "buffer"
            else:
                raise error(name_tok, f"kernel '{kernel}': parameter '{name_tok.text}' has no role: give it "
                                      f"[[buffer(n)]], [[threadgroup(n)]] or a builtin attribute")
            return None, dict(name=name_tok.text, role=role, type=type_text, condition=condition, **where)
        if not is_indirect:
            raise error(name_tok, f"kernel '{kernel}': [[{role}({index})]] parameter '{name_tok.text}' must be a "
                                  f"pointer or a reference")
        if role == "buffer" and not words & {"device", "constant"}:
            raise error(name_tok, f"kernel '{kernel}': buffer parameter '{name_tok.text}' needs an address space "
                                  f"(device or constant)")
        return Param(name_tok.text, role, index, None, type_text, condition, **where), {}

    # -- explicit instantiations --

    def read_instantiation(self, decl: Declaration) -> None:
        tokens = self.tokens
        host_name = None
        attrs = self.attributes_between(decl.start, decl.end)
        for a in attrs:
            if a.name == "host_name":
                host_name = concat_string_literals(a.args)
        target = self.instantiated_name(decl)
        if target is None:
            if host_name is not None:
                raise error(tokens[decl.start], f"cannot find the kernel that '{host_name}' instantiates")
            return
        name_start, name_idx, close, params = target
        candidates = self.overloads.get(tokens[name_idx].text, [])
        if not candidates:
            if host_name is not None:
                raise error(tokens[name_idx], f"'{host_name}' instantiates '{tokens[name_idx].text}', which is not "
                                              f"a kernel defined above")
            return
        self.allow(attrs, {"host_name", "kernel"})
        args = self.split_top_level(name_idx + 2, close) if close is not None else None
        kernel = self.pick_overload(candidates, args, params, tokens[name_idx])
        pointer_type = None
        if close is None:  # template arguments deduced from the parameter list
            text = self.text(name_start, name_idx + 1)
            pointer_type = f"void(*)({self.cpp_parameter_list(*params)})"
        else:
            text = self.text(name_start, close + 1)
        self.program.instantiations.append((decl.start, decl.end))
        entry = Entry(host_name or text, kernel, text, decl.start, decl.namespace,
                      max_threads=self.instance_max_threads(kernel, args, tokens[name_idx]),
                      pointer_type=pointer_type, parameter_span=params if close is None else None)
        self.program.entries.append(entry)

    def instantiated_name(self, decl: Declaration):
        """(first token of the qualified name, name, closing '>' or None, parameter list span or None) of the
        function an explicit instantiation names: the last top-level `name<...>` followed by ';' or '(', or --
        with deduced template arguments -- `name(...)` followed by ';'."""
        tokens = self.tokens
        target = None
        k = decl.start + 1
        while k < decl.end:
            if is_attribute_start(tokens, k):
                k = matching(tokens, k) + 1
                continue
            t = tokens[k]
            if t.text == "(":
                close_paren = matching(tokens, k)
                prev = tokens[k - 1]
                if close_paren + 1 == decl.end and prev.kind == "id" and prev.text != "decltype":
                    target = (k - 1, None, (k + 1, close_paren))
                k = close_paren + 1
                continue
            if t.kind == "id" and k + 1 < decl.end and tokens[k + 1].text == "<":
                close = matching(tokens, k + 1)
                after = tokens[close + 1].text if close + 1 <= decl.end else ";"
                if after in (";", "("):
                    params = (close + 2, matching(tokens, close + 1)) if after == "(" else None
                    target = (k, close, params)
                k = close + 1
                continue
            k += 1
        if target is None:
            return None
        name_idx, close, params = target
        return self.qualified_start(decl.start, name_idx), name_idx, close, params

    def qualified_start(self, floor: int, name_idx: int) -> int:
        """First token of `a::b::name` or `::a::name` ending at name_idx (a leading `::` is the global scope,
        not part of the return type before it)."""
        tokens = self.tokens
        k = name_idx
        while k - 1 > floor and tokens[k - 1].text == "::":
            before = tokens[k - 2]
            if before.kind == "id" and before.text not in ("void", "kernel", "template", "typename") and \
                    before.text not in ADDRESS_SPACES:
                k -= 2
            else:
                return k - 1
        return k

    def pick_overload(self, candidates: list[KernelDef], args, params, name: Token) -> KernelDef:
        """The kernel template an instantiation names, among templates that share its name."""
        if len(candidates) == 1:
            return candidates[0]
        fits = candidates
        if args is not None:
            fits = [k for k in fits if sum(1 for _, d in k.template_params if not d) <= len(args)
                    <= len(k.template_params)]
        if params is not None:
            n = len(self.split_top_level(*params))
            fits = [k for k in fits if len(k.params) == n]
        if len(fits) != 1:
            raise error(name, f"cannot tell which of the {len(candidates)} kernel templates named '{name.text}' "
                              f"this instantiation names")
        return fits[0]

    def instance_max_threads(self, kernel: KernelDef, args, where: Token) -> int | None:
        """max_total_threads_per_threadgroup for one instantiation (template-dependent expressions included)."""
        attr = kernel.max_threads_attribute
        if attr is None:
            return kernel.max_threads
        if args is None:
            raise error(where, f"[[max_total_threads_per_threadgroup]] of '{kernel.name}' depends on its template "
                               f"arguments: name them in the instantiation ({kernel.name}<...>)")
        env = dict(self.int_constants)
        for n, (pname, default) in enumerate(kernel.template_params):
            value_tokens = self.tokens[args[n][0] : args[n][1]] if n < len(args) else default
            try:
                env[pname] = evaluate(value_tokens, env)
            except NotConstant:
                continue  # a type argument, or one the attribute may not need
        try:
            return evaluate(attr.args, env)
        except NotConstant as e:
            raise error(where, f"cannot evaluate [[max_total_threads_per_threadgroup(...)]] of '{kernel.name}' "
                               f"for this instantiation: {e}") from None

    def cpp_parameter_list(self, start: int, end: int) -> str:
        """An instantiation's parameter list as C++: attributes dropped, address spaces erased."""
        tokens = self.tokens
        out = []
        k = start
        while k < end:
            if is_attribute_start(tokens, k):
                k = matching(tokens, k) + 1
                continue
            t = tokens[k]
            if t.text == "constant" and t.kind == "id":
                near_const = tokens[k - 1].text == "const" or tokens[k + 1].text == "const"
                out.append("" if near_const else "const")
            elif t.text not in ADDRESS_SPACES:
                out.append(t.text)
            k += 1
        return " ".join(w for w in out if w)

    def text(self, start: int, end: int) -> str:
        """Source text of tokens[start:end], as written."""
        toks = self.tokens[start:end]
        out = []
        for a, b in zip(toks, toks[1:] + [None]):
            out.append(a.text)
            if b is not None and b.start > a.end:
                out.append(" ")
        return "".join(out)

    # -- program-scope variables --

    def read_program_scope_declaration(self, decl: Declaration) -> None:
        tokens = self.tokens
        words = [t.text for t in tokens[decl.start : decl.end]]
        first = words[0]
        if first in ("typedef", "using", "static_assert", "template", "struct", "class", "union", "enum",
                     "namespace", "extern", "friend"):
            return
        if any(w in ("struct", "class", "enum", "union") for w in words[:2]):
            return
        attrs = self.attributes_between(decl.start, decl.end)
        fc = next((a for a in attrs if a.name == "function_constant"), None)
        if fc is None and self.looks_like_function_declaration(decl):
            return
        if fc is not None:
            self.allow([fc], {"function_constant"})
            name_tok = tokens[fc.start - 1]
            # MLX's STEEL_CONST spells these `static constant constexpr const bool name [[function_constant(0)]]`
            type_toks = [t.text for t in tokens[decl.start : fc.start - 1]
                         if t.text not in ("constant", "static", "constexpr", "const")]
            self.program.constants[name_tok.text] = FunctionConstant(
                name_tok.text, " ".join(type_toks), fc.int_arg(self.int_constants), (decl.start, decl.end),
                name_tok.file, name_tok.line
            )
            return
        if "constant" not in words and "constexpr" not in words:
            raise error(tokens[decl.start], "program-scope variables must be declared in the constant address space "
                                            "(`constant T name = ...;`)")
        self.remember_int_constant(decl)

    def remember_int_constant(self, decl: Declaration) -> None:
        """`constant int N = 4;` / `constexpr int N = 2 * M;`: known to attribute arguments that follow."""
        tokens = self.tokens
        eq = next((k for k in range(decl.start, decl.end) if tokens[k].text in ("=", "(", "[", "{")), None)
        if eq is None or tokens[eq].text != "=" or tokens[eq - 1].kind != "id":
            return
        try:
            self.int_constants[tokens[eq - 1].text] = evaluate(tokens[eq + 1 : decl.end], self.int_constants)
        except NotConstant:
            pass  # not an integer constant expression (a float, a call): attributes cannot use it

    def looks_like_function_declaration(self, decl: Declaration) -> bool:
        tokens = self.tokens
        depth = 0
        for k in range(decl.start, decl.end):
            t = tokens[k].text
            if t == "=" and depth == 0:
                return False
            if t == "(":
                if depth == 0 and k > decl.start and tokens[k - 1].kind == "id":
                    return True
                depth += 1
            elif t == ")":
                depth -= 1
        return False

    # -- threadgroup variables --

    def find_threadgroup_variables(self) -> None:
        """Statement-level `threadgroup T name[N];` (not pointers or references into threadgroup memory).

        An initializer (`threadgroup float buf[32] = {0};`, which Apple's compiler accepts) is recorded and not
        run: Metal does not guarantee that a threadgroup variable's initializer is applied, so its memory starts
        poisoned like any other threadgroup memory and a kernel that relies on the initializer reads poison.
        """
        tokens = self.tokens
        for i, t in enumerate(tokens):
            if t.text != "threadgroup" or not self.starts_statement(i):
                continue
            end = i
            while end < len(tokens) and tokens[end].text not in (";", "}"):
                end = matching(tokens, end) if tokens[end].text in ("{", "(", "[") else end
                end += 1
            if end >= len(tokens) or tokens[end].text != ";":
                continue  # not a declaration statement; coverage.classify decides what it is
            body = tokens[i + 1 : end]
            declarators = self.split_declarators(body)
            pointers = [d for d in declarators if self.declares_indirection(d)]
            if len(pointers) == len(declarators):
                continue  # pointers or references into threadgroup memory
            if pointers:
                raise error(t, "declare threadgroup variables and pointers to threadgroup memory in separate "
                               "statements")
            var = self.read_threadgroup_declarators(t, declarators, i)
            self.program.threadgroup_variables.append(var)

    def starts_statement(self, i: int) -> bool:
        return i == 0 or self.tokens[i - 1].text in (";", "{", "}") or self.tokens[i - 1].kind == "directive"

    def split_declarators(self, body: list[Token]) -> list[list[Token]]:
        """The comma-separated pieces of a declaration (the first one holds the type)."""
        pieces: list[list[Token]] = [[]]
        k = 0
        while k < len(body):
            x = body[k]
            if x.text in ("(", "[", "{") or (x.text == "<" and pieces[-1] and pieces[-1][-1].kind == "id"):
                try:
                    close = matching(body, k)
                except Exception:
                    close = k
                pieces[-1].extend(body[k : close + 1])
                k = close + 1
                continue
            if x.text == ",":
                pieces.append([])
            else:
                pieces[-1].append(x)
            k += 1
        return pieces

    @staticmethod
    def declares_indirection(piece: list[Token]) -> bool:
        """Whether a declarator (before its initializer) declares a pointer or reference."""
        for x in piece:
            if x.text in ("=", "{", "["):
                return False
            if x.text in ("*", "&", "&&") or (x.text == "(" and x is not piece[0]):
                return True
        return False

    def read_threadgroup_declarators(self, t: Token, pieces: list[list[Token]], i: int) -> "ThreadgroupVariable":
        declarators: list[tuple[str, str]] = []
        initialized: list[str] = []
        type_text = ""
        for n, piece in enumerate(pieces):
            init_at = next((k for k, x in enumerate(piece) if x.text in ("=", "{")), len(piece))
            head = piece[:init_at]
            name_at = len(head)  # the name is the identifier before the trailing `[N]` groups
            while name_at > 0 and head[name_at - 1].text == "]":
                depth = 0
                for k in range(name_at - 1, -1, -1):
                    depth += {"]": 1, "[": -1}.get(head[k].text, 0)
                    if depth == 0:
                        name_at = k
                        break
            name_at -= 1
            if name_at < (1 if n == 0 else 0) or head[name_at].kind != "id" or (n > 0 and name_at != 0):
                raise error(t, "cannot read this threadgroup variable declaration")
            if n == 0:
                type_text = " ".join(x.text for x in head[:name_at])
            declarators.append((head[name_at].text, "".join(x.text for x in head[name_at + 1 :])))
            if init_at < len(piece):
                initialized.append(head[name_at].text)
        return ThreadgroupVariable((i, self.statement_end(i)), type_text, tuple(declarators), tuple(initialized))

    def statement_end(self, i: int) -> int:
        tokens = self.tokens
        k = i
        while tokens[k].text != ";":
            k = matching(tokens, k) + 1 if tokens[k].text in ("{", "(", "[") else k + 1
        return k

    # -- member functions overloaded by address space --

    _QUALIFIERS = {"const", "volatile", "&", "&&", "noexcept", *ADDRESS_SPACES}

    def find_address_space_overloads(self) -> None:
        """Definitions that become one once address spaces are erased -- member functions qualified `thread` /
        `device` / `threadgroup`, constructors with member initializer lists, free functions overloaded on
        `device T*` / `threadgroup T*`, class templates specialised as `pointer_element<device T*>` and
        `<thread T*>`. The first is kept and the others dropped when their text is identical once erased;
        otherwise the emulator cannot keep both and refuses the source."""
        tokens = self.tokens
        scopes = scope_kinds(tokens)
        self.find_constructor_qualifiers(scopes)
        enclosing: list[int] = []
        seen: dict[tuple, tuple[str, ...]] = {}
        for k, t in enumerate(tokens):
            if t.text == "{":
                enclosing.append(k)
            elif t.text == "}" and enclosing:
                enclosing.pop()
            if scopes[k] not in (NAMESPACE, CLASS):
                continue
            found = self.definition_at(k)
            if found is None:
                continue
            start, body, last = found
            head = tokens[start:body]
            if not any(x.text in ADDRESS_SPACES for x in head):
                continue
            skip = frozenset(tokens[j].start for j in self.program.constructor_qualifiers)
            key = (enclosing[-1] if enclosing else -1, erased_text(head, skip))
            whole = erased_text(tokens[start : last + 1], skip)
            if key not in seen:
                seen[key] = whole
                continue
            if seen[key] != whole:
                raise error(tokens[start], "two definitions here differ only by address space but have different "
                                           "bodies: the emulator erases address spaces and cannot keep both")
            qualifiers_only = all(self.after_parameter_list(j) for j in range(start, body)
                                  if tokens[j].text in ADDRESS_SPACES)
            (self.program.duplicate_members if qualifiers_only else self.program.duplicate_overloads).append(
                (start, last))

    def after_parameter_list(self, j: int) -> bool:
        """Whether the address-space keyword at tokens[j] qualifies a member function (`f() const device`)."""
        k = j - 1
        while k >= 0 and self.tokens[k].text in self._QUALIFIERS:
            k -= 1
        return k >= 0 and self.tokens[k].text == ")"

    def find_constructor_qualifiers(self, scopes: list[str]) -> None:
        """`constant` qualifying a constructor (`complex_t(U x) constant : ...`): erased, not read as const,
        since C++ constructors cannot be cv-qualified."""
        tokens = self.tokens
        enclosing: list[int] = []
        for k, t in enumerate(tokens):
            if t.text == "{":
                enclosing.append(k)
            elif t.text == "}" and enclosing:
                enclosing.pop()
            if t.text != "constant" or not enclosing or scopes[k] != CLASS:
                continue
            j = k - 1
            while j >= 0 and tokens[j].text in self._QUALIFIERS:
                j -= 1
            if j < 0 or tokens[j].text != ")":
                continue
            open_ = self.opening_paren(j)
            if open_ > 0 and tokens[open_ - 1].text == self.body_owner(enclosing[-1]):
                self.program.constructor_qualifiers.append(k)

    def definition_at(self, k: int) -> tuple[int, int, int] | None:
        """(first token, body '{', last token) of a function or class definition whose head ends at tokens[k]
        (a parameter list's ')' or a class template specialisation's '>')."""
        tokens = self.tokens
        n = len(tokens)
        if tokens[k].text == ")":
            open_ = self.opening_paren(k)
            name = tokens[open_ - 1] if open_ > 0 else None
            # `operator[]`, `operator()`, and conversion operators (`operator vec<T, 2>() const thread`)
            is_operator = any(x.text == "operator" for x in tokens[self.definition_start(open_ - 1) : open_])
            if name is None or not (is_operator or (name.kind == "id" and name.text not in _NOT_FUNCTIONS)):
                return None
            end = k + 1
            while end < n and tokens[end].text in self._QUALIFIERS:
                end += 1
            if end < n and tokens[end].text == ":":
                end = self.skip_member_initializers(end + 1)
            if end is None or end >= n or tokens[end].text != "{":
                return None
            return self.definition_start(open_ - 1), end, matching(tokens, end)
        if tokens[k].text in (">", ">>") and k + 1 < n and tokens[k + 1].text in ("{", ":"):
            start = self.definition_start(k)
            words = [x.text for x in tokens[start:k]]
            if not {"struct", "class"} & set(words):
                return None
            body = k + 1
            while body < n and tokens[body].text not in ("{", ";"):
                body += 1
            if body >= n or tokens[body].text != "{":
                return None
            last = matching(tokens, body)
            return start, body, last + 1 if last + 1 < n and tokens[last + 1].text == ";" else last
        return None

    def names_operator(self, open_: int) -> bool:
        """Whether the name before the '(' at open_ is an operator: `operator+`, `operator()`, and conversions to
        any type, `operator vec<T, 2>` included."""
        tokens = self.tokens
        j = open_ - 1
        while j >= 0 and j > open_ - 24:
            if tokens[j].text == "operator":
                return True
            if tokens[j].kind not in ("id", "num") and tokens[j].text not in ("::", "<", ">", ">>", ",", "*", "&",
                                                                                "(", ")", "[", "]"):
                return j > 0 and tokens[j - 1].text == "operator"
            j -= 1
        return False

    def definition_start(self, k: int) -> int:
        tokens = self.tokens
        start = k
        while start > 0 and tokens[start - 1].text not in (";", "{", "}", ":") and \
                tokens[start - 1].kind != "directive":
            start -= 1
            if tokens[start].text in (">", ">>"):  # a template head's `>`: jump over `<...>` defaults
                depth = 0
                for j in range(start, -1, -1):
                    depth += {">": 1, ">>": 2, "<": -1}.get(tokens[j].text, 0)
                    if depth <= 0:
                        start = j
                        break
        return start

    def skip_member_initializers(self, k: int) -> int | None:
        """Index of the body '{' after a constructor's `: a(x), b{y}` list starting at tokens[k]."""
        tokens = self.tokens
        while k < len(tokens):
            while k < len(tokens) and (tokens[k].kind == "id" or tokens[k].text == "::"):
                k += 1
            if k < len(tokens) and tokens[k].text == "<":
                k = matching(tokens, k) + 1
            if k >= len(tokens) or tokens[k].text not in ("(", "{"):
                return None
            k = matching(tokens, k) + 1
            if k < len(tokens) and tokens[k].text == ",":
                k += 1
                continue
            return k
        return None

    # -- which kernels need the fiber scheduler --

    def classify_sync(self) -> None:
        """Marks kernels that can reach a barrier or collective; the others take the plain-loop fast path.

        Conservative: any function, struct or class whose body mentions a sync identifier (or a name already
        known to be sync) makes every kernel that mentions its name sync.
        """
        tokens = self.tokens
        bodies: list[tuple[str, int, int]] = []
        for k, t in enumerate(tokens):
            if t.text != "{" or k == 0:
                continue
            owner = self.body_owner(k)
            if owner:
                bodies.append((owner, k, matching(tokens, k)))
        sync_names = set()
        changed = True
        while changed:
            changed = False
            for owner, s, e in bodies:
                if owner in sync_names:
                    continue
                if any(self.mentions_sync(tokens[x].text, sync_names) for x in range(s, e)):
                    sync_names.add(owner)
                    changed = True
        for kernel in self.program.kernels.values():
            s, e = kernel.body
            kernel.uses_sync = any(self.mentions_sync(tokens[x].text, sync_names) for x in range(s, e))

    @staticmethod
    def mentions_sync(word: str, sync_names: set[str]) -> bool:
        return is_sync_identifier(word) or word in sync_names

    def body_owner(self, brace: int) -> str | None:
        """Name of the function, struct or class whose body opens at tokens[brace], if any."""
        tokens = self.tokens
        k = brace - 1
        while k >= 0 and (tokens[k].text in ("const", "noexcept", "override", "final") or
                          tokens[k].text in ADDRESS_SPACES):
            k -= 1
        if k >= 0 and tokens[k].text == ")":
            open_ = self.opening_paren(k)
            name = tokens[open_ - 1] if open_ > 0 else None
            if name is not None and name.kind == "id" and name.text not in ("if", "for", "while", "switch", "catch"):
                return name.text
            return None
        # struct / class heads: `struct Name ... {`
        j = brace - 1
        while j >= 0 and tokens[j].text not in (";", "{", "}"):
            if tokens[j].text in ("struct", "class", "union") and j + 1 < brace and tokens[j + 1].kind == "id":
                return tokens[j + 1].text
            j -= 1
        return None

    # -- final checks --

    def check_entries(self) -> None:
        seen: dict[str, Entry] = {}
        for e in self.program.entries:
            if e.host_name in seen:
                k = e.kernel
                raise MSLCompileError(Diagnostic(k.file, k.line, f"host name '{e.host_name}' is defined twice"))
            seen[e.host_name] = e
        for e in self.program.entries:
            for p in e.kernel.params:
                if p.condition and p.condition not in self.program.constants:
                    raise MSLCompileError(Diagnostic(p.file, p.line, f"kernel '{e.kernel.name}': parameter "
                                                     f"'{p.name}' depends on unknown function constant "
                                                     f"'{p.condition}'"))


def parse(tokens: list[Token]) -> Program:
    return Parser(tokens).parse()
