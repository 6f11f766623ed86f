"""Specialised MSL source for the Metal backends (torch.mps.compile_shader and the Objective-C++ bridge).

compile_shader cannot pass function-constant values, so every backend compiles the source with its function
constants already folded in: the same specialisation the emulator compiles, written back as MSL. Each
`constant T name [[function_constant(k)]];` becomes `constant constexpr T name = value;`,
`is_function_constant_defined(name)` becomes true or false, and `function_constant(...)` is dropped from buffer
attributes (the buffer stays in the signature; the launcher binds a placeholder when the constant is false).
"""

from __future__ import annotations

from .parse import Program, is_attribute_start, read_attributes
from .transform import Edits, Specialization, constant_initializer, fold_defined_query


def to_msl(text: str, program: Program, spec: Specialization) -> str:
    tokens = program.tokens
    values = dict(spec.values)
    edits = Edits(text)
    for fc in program.constants.values():
        start, end = tokens[fc.statement[0]].start, tokens[fc.statement[1]].end
        type_name = " ".join(w for w in fc.type_text.split() if w != "const")
        if fc.name in values:
            init = constant_initializer(fc, values[fc.name])
        else:
            init = f"{type_name}()"
        edits.replace(start, end, f"constant constexpr {type_name} {fc.name} = {init};")
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if fold_defined_query(edits, program, values, i):
            i += 4
            continue
        if is_attribute_start(tokens, i):
            attrs, nxt = read_attributes(tokens, i)
            if any(a.name == "function_constant" for a in attrs):
                kept = [a for a in attrs if a.name != "function_constant"]
                parts = [a.name + ("(" + "".join(x.text for x in a.args) + ")" if a.args else "") for a in kept]
                edits.replace(t.start, tokens[nxt - 1].end, f"[[{', '.join(parts)}]]" if parts else "")
            i = nxt
            continue
        i += 1
    # The preprocessor ran against empty stand-ins for the Metal headers: bring the real one back.
    return "#include <metal_stdlib>\n" + edits.apply()
