"""Find what a Metal translation unit declares: kernels and their parameter roles, explicit instantiations with
host names, function constants and statement-level threadgroup variables.

Works on tokens of the preprocessed source and never parses C++ types: parameter types are left to the C++
compiler, which sees the kernel's real (instantiated) signature. Roles are read from each kernel's definition,
because explicit instantiations may list bare types without attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Diagnostic, MSLCompileError
from .lexer import Token, matching

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

    def int_arg(self) -> int:
        text = "".join(t.text for t in self.args)
        try:
            return int(text, 0)
        except ValueError:
            raise MSLCompileError(
                Diagnostic(self.args[0].file, self.args[0].line, f"[[{self.name}(...)]] needs an integer literal")
            ) from None


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


@dataclass(frozen=True)
class Entry:
    """A kernel the host can launch: a host name bound to a kernel definition (or an instantiation of one)."""

    host_name: str
    kernel: KernelDef
    cpp_function: str  # C++ expression naming the function, e.g. "ns::softmax<float, 4>"
    alias_site: int | None  # token index of the instantiation statement, if any
    namespace: tuple[str, ...] = ()  # where the instantiation statement stands


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


@dataclass
class Program:
    tokens: list[Token]
    kernels: dict[str, KernelDef] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    constants: dict[str, FunctionConstant] = field(default_factory=dict)
    threadgroup_variables: list[ThreadgroupVariable] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    instantiations: list[tuple[int, int]] = field(default_factory=list)  # statements to replace
    # Member functions that differ from an earlier one only by address-space qualifiers (`f() device` beside
    # `f() thread`): identical once address spaces are erased, so the transform drops them.
    duplicate_members: list[tuple[int, int]] = field(default_factory=list)


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
        attrs.append(Attribute(name, args, i, end))
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
                self.program.entries.append(Entry(kernel.name, kernel, kernel.qualified_name, None))
        self.check_entries()
        return self.program

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
        max_threads = None
        for a in self.attributes_between(decl.start, brace):
            if a.name == "max_total_threads_per_threadgroup":
                max_threads = a.int_arg()
        params = self.read_params(name_tok.text, open_paren, close_paren)
        qualified = "::".join((*decl.namespace, name_tok.text))
        if name_tok.text in self.program.kernels:
            raise error(name_tok, f"kernel '{name_tok.text}' is defined twice")
        self.program.kernels[name_tok.text] = KernelDef(
            name=name_tok.text,
            qualified_name=qualified,
            params=params,
            is_template=head[0] == "template",
            max_threads=max_threads,
            file=name_tok.file,
            line=name_tok.line,
            body=decl.body,
        )

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
        name_tok = next((t for t in reversed(plain) if t.kind == "id"), None)
        if name_tok is None or len(plain) < 2:
            where = tokens[s]
            raise error(where, f"kernel '{kernel}': every parameter needs a type and a name")
        type_toks = plain[: plain.index(name_tok)]
        type_text = " ".join(t.text for t in type_toks)
        words = {t.text for t in type_toks}
        is_indirect = "*" in words or "&" in words
        condition = None
        role = index = builtin = None
        for a in attrs:
            if a.name == "buffer":
                role, index = "buffer", a.int_arg()
            elif a.name == "threadgroup":
                role, index = "threadgroup", a.int_arg()
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
        for a in self.attributes_between(decl.start, decl.end):
            if a.name == "host_name":
                host_name = concat_string_literals(a.args)
        # The instantiated function: the last top-level `name<...>` followed by ';' or '('.
        target = None
        k = decl.start + 1
        while k < decl.end:
            if is_attribute_start(tokens, k):
                k = matching(tokens, k) + 1
                continue
            t = tokens[k]
            if t.text == "(":
                k = matching(tokens, k) + 1
                continue
            if t.kind == "id" and k + 1 < decl.end and tokens[k + 1].text == "<":
                close = matching(tokens, k + 1)
                after = tokens[close + 1].text if close + 1 <= decl.end else ";"
                if after in (";", "("):
                    name_start = k
                    while name_start - 2 > decl.start and tokens[name_start - 1].text == "::":
                        name_start -= 2
                    target = (name_start, k, close)
                k = close + 1
                continue
            k += 1
        if target is None:
            if host_name is not None:
                raise error(tokens[decl.start], f"explicit instantiation '{host_name}' must name the template "
                                                f"arguments (f<T>)")
            return
        name_start, name_idx, close = target
        kernel = self.program.kernels.get(tokens[name_idx].text)
        if kernel is None:
            if host_name is not None:
                raise error(tokens[name_idx], f"'{host_name}' instantiates '{tokens[name_idx].text}', which is not "
                                              f"a kernel defined above")
            return
        text = self.text(name_start, close + 1)
        self.program.instantiations.append((decl.start, decl.end))
        self.program.entries.append(Entry(host_name or text, kernel, text, decl.start, decl.namespace))

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
            name_tok = tokens[fc.start - 1]
            type_toks = [t.text for t in tokens[decl.start : fc.start - 1] if t.text not in ("constant", "static")]
            self.program.constants[name_tok.text] = FunctionConstant(
                name_tok.text, " ".join(type_toks), fc.int_arg(), (decl.start, decl.end), name_tok.file, name_tok.line
            )
            return
        if "constant" not in words and "constexpr" not in words:
            raise error(tokens[decl.start], "program-scope variables must be declared in the constant address space "
                                            "(`constant T name = ...;`)")

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
        """Statement-level `threadgroup T name[N];` (not pointers or references into threadgroup memory)."""
        tokens = self.tokens
        for i, t in enumerate(tokens):
            if t.text != "threadgroup" or i == 0 or tokens[i - 1].text not in (";", "{", "}", ":"):
                continue
            end = i
            while tokens[end].text != ";":
                if tokens[end].text in ("{", "}"):
                    break
                end += 1
            if tokens[end].text != ";":
                continue
            body = tokens[i + 1 : end]
            if not self.is_variable_declaration(body):
                continue  # a pointer / reference into threadgroup memory, or not a declaration
            declarators: list[tuple[str, str]] = []
            type_end = None
            k = 0
            while k < len(body):
                x = body[k]
                if x.text == "<":
                    k = matching(body, k) + 1
                    continue
                nxt = body[k + 1].text if k + 1 < len(body) else ";"
                if x.kind == "id" and nxt in ("[", ",", ";") and (k > 0):
                    if type_end is None:
                        type_end = k
                    suffix_end = k + 1
                    while suffix_end < len(body) and body[suffix_end].text == "[":
                        suffix_end = matching(body, suffix_end) + 1
                    suffix = "".join(y.text for y in body[k + 1 : suffix_end])
                    declarators.append((x.text, suffix))
                    k = suffix_end
                    if k < len(body) and body[k].text == ",":
                        k += 1
                    continue
                k += 1
            if type_end is None or not declarators:
                raise error(t, "cannot read this threadgroup variable declaration")
            type_text = " ".join(x.text for x in body[:type_end])
            self.program.threadgroup_variables.append(ThreadgroupVariable((i, end), type_text, tuple(declarators)))

    @staticmethod
    def is_variable_declaration(body: list[Token]) -> bool:
        depth = 0
        for x in body:
            if x.text == "[":
                depth += 1
            elif x.text == "]":
                depth -= 1
            elif depth == 0 and x.text in ("*", "&", "&&", "(", "="):
                return False
        return True

    # -- member functions overloaded by address space --

    _QUALIFIERS = {"const", "volatile", "&", "&&", "noexcept", *ADDRESS_SPACES}

    def find_address_space_overloads(self) -> None:
        tokens = self.tokens
        enclosing: list[int] = []
        seen: set[tuple] = set()
        for k, t in enumerate(tokens):
            if t.text == "{":
                enclosing.append(k)
            elif t.text == "}" and enclosing:
                enclosing.pop()
            if t.text != ")" or not enclosing:
                continue
            end = k + 1
            while end < len(tokens) and tokens[end].text in self._QUALIFIERS:
                end += 1
            qualifiers = [x.text for x in tokens[k + 1 : end]]
            if not set(qualifiers) & set(ADDRESS_SPACES) or end >= len(tokens) or tokens[end].text not in ("{", ";"):
                continue
            start = self.opening_paren(k) - 1
            while start > 0 and tokens[start - 1].text not in (";", "{", "}", ":"):
                start -= 1
            last = matching(tokens, end) if tokens[end].text == "{" else end
            signature = tuple(x.text for x in tokens[start:end] if x.text not in ADDRESS_SPACES)
            key = (enclosing[-1], signature)
            if key in seen:
                self.program.duplicate_members.append((start, last))
            seen.add(key)

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
