"""The launch description of a kernel pack: which tensors a module's forward binds, how outputs are allocated,
and which kernels run over which grid — the same information as a library KernelFamily's `outputs` and `plan`,
written as data (JSON) with size formulas instead of Python functions.

    {
      "inputs": ["x"],                     forward's positional arguments, in order
      "parameters": ["weight"],            state-dict tensors of the module the kernels read
      "attributes": ["eps"],               number attributes of the module (self.eps)
      "dtypes": ["float32"],               dtypes of the first input the kernels handle
      "outputs": {"out": {"shape": "x.shape", "dtype": "x.dtype"}},
      "launches": [{"kernel": "rms_{dtype}",
                    "buffers": ["x", "weight", "out", {"float": "eps"}, {"uint": "x.shape[-1]"}],
                    "threads": ["rows(x) * 256", 1, 1], "group_size": [256, 1, 1],
                    "constants": {}, "threadgroup_memory": {}}],
      "returns": ["out"]                   outputs forward returns (others are scratch); default: all
    }

`buffers[i]` binds [[buffer(i)]]: a tensor's name, {"<msl scalar type>": formula} for a `constant T&` scalar, or
null for a slot the kernel does not read. Formulas are evaluated by `formula.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..kernels.spec import DTYPE_NAMES, MSL_SCALAR_TYPES
from .formula import FormulaError, parse

FLOAT_DTYPE_NAMES = tuple(DTYPE_NAMES.values())
Formula = str | int | float | bool


class DeclarationError(ValueError):
    """A pack declaration that does not follow the format; the message names the field."""


@dataclass(frozen=True)
class OutputSpec:
    shape: Formula
    dtype: Formula


@dataclass(frozen=True)
class ScalarArg:
    msl_type: str
    value: Formula


@dataclass(frozen=True)
class LaunchSpec:
    kernel: str  # may contain {dtype}
    buffers: tuple[str | ScalarArg | None, ...]
    threads: tuple[Formula, ...]
    group_size: tuple[Formula, ...]
    constants: Mapping[str, Formula] = field(default_factory=dict)
    threadgroup_memory: Mapping[int, Formula] = field(default_factory=dict)


@dataclass(frozen=True)
class Declaration:
    inputs: tuple[str, ...]
    outputs: Mapping[str, OutputSpec]
    launches: tuple[LaunchSpec, ...]
    parameters: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    returns: tuple[str, ...] = ()

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return (*self.inputs, *self.parameters, *self.outputs)

    def to_json(self) -> dict[str, Any]:
        def buffer(b: str | ScalarArg | None) -> Any:
            return {b.msl_type: b.value} if isinstance(b, ScalarArg) else b

        return {
            "inputs": list(self.inputs),
            "parameters": list(self.parameters),
            "attributes": list(self.attributes),
            "dtypes": list(self.dtypes),
            "outputs": {n: {"shape": o.shape, "dtype": o.dtype} for n, o in self.outputs.items()},
            "launches": [{
                "kernel": l.kernel, "buffers": [buffer(b) for b in l.buffers], "threads": list(l.threads),
                "group_size": list(l.group_size), "constants": dict(l.constants),
                "threadgroup_memory": {str(k): v for k, v in l.threadgroup_memory.items()},
            } for l in self.launches],
            "returns": list(self.returns),
        }


def parse_declaration(data: Any) -> Declaration:
    """Checks a declaration (parsed JSON) field by field; every formula is parsed here, so a bad one is reported
    when the pack is loaded, not at its first call."""
    if not isinstance(data, dict):
        raise DeclarationError(f"the declaration must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"inputs", "parameters", "attributes", "dtypes", "outputs", "launches", "returns"})
    if unknown:
        raise DeclarationError(f"unknown field(s) {', '.join(unknown)}")
    inputs = _names(data, "inputs", required=True)
    parameters = _names(data, "parameters")
    attributes = _names(data, "attributes")
    dtypes = _names(data, "dtypes") or ("float32",)
    for d in dtypes:
        if d not in FLOAT_DTYPE_NAMES:
            raise DeclarationError(f"dtypes: {d!r} is not one of {', '.join(FLOAT_DTYPE_NAMES)}")
    outputs_data = data.get("outputs")
    if not isinstance(outputs_data, dict) or not outputs_data:
        raise DeclarationError("outputs must map at least one output name to {\"shape\": ..., \"dtype\": ...}")
    outputs = {}
    for name, spec in outputs_data.items():
        if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
            raise DeclarationError(f"outputs.{name} must have exactly the fields shape and dtype")
        outputs[_identifier(name, "outputs")] = OutputSpec(_formula(spec["shape"], f"outputs.{name}.shape"),
                                                           _formula(spec["dtype"], f"outputs.{name}.dtype"))
    everything = (*inputs, *parameters, *attributes, *outputs)
    duplicates = sorted({n for n in everything if everything.count(n) > 1})
    if duplicates:
        raise DeclarationError(f"name(s) used twice across inputs, parameters, attributes and outputs: "
                               f"{', '.join(duplicates)}")
    launches_data = data.get("launches")
    if not isinstance(launches_data, list) or not launches_data:
        raise DeclarationError("launches must be a non-empty list")
    tensors = (*inputs, *parameters, *outputs)
    launches = tuple(_launch(l, f"launches[{i}]", tensors) for i, l in enumerate(launches_data))
    returns = _names(data, "returns") or tuple(outputs)
    for r in returns:
        if r not in outputs:
            raise DeclarationError(f"returns: {r!r} is not an output (outputs: {', '.join(outputs)})")
    return Declaration(inputs, outputs, launches, parameters, attributes, dtypes, returns)


def _launch(data: Any, where: str, tensors: tuple[str, ...]) -> LaunchSpec:
    if not isinstance(data, dict):
        raise DeclarationError(f"{where} must be an object")
    unknown = sorted(set(data) - {"kernel", "buffers", "threads", "group_size", "constants", "threadgroup_memory"})
    if unknown:
        raise DeclarationError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kernel = data.get("kernel")
    if not isinstance(kernel, str) or not kernel.replace("{dtype}", "x").isidentifier():
        raise DeclarationError(f"{where}.kernel must be a kernel host name (letters, digits, _; {{dtype}} allowed)")
    buffers = []
    for i, b in enumerate(data.get("buffers") or []):
        at = f"{where}.buffers[{i}]"
        if b is None:
            buffers.append(None)
        elif isinstance(b, str):
            if b not in tensors:
                raise DeclarationError(f"{at}: {b!r} is not an input, parameter or output "
                                       f"({', '.join(tensors)}); scalars are written {{\"uint\": formula}}")
            buffers.append(b)
        elif isinstance(b, dict) and len(b) == 1:
            (msl_type, value), = b.items()
            if msl_type not in MSL_SCALAR_TYPES:
                raise DeclarationError(f"{at}: scalar type {msl_type!r} is not one of {', '.join(MSL_SCALAR_TYPES)}")
            buffers.append(ScalarArg(msl_type, _formula(value, at)))
        else:
            raise DeclarationError(f"{at} must be a tensor name, null or {{\"<msl type>\": formula}}")
    if not buffers:
        raise DeclarationError(f"{where}.buffers must list the kernel's [[buffer(i)]] arguments")
    threads = _grid(data.get("threads"), f"{where}.threads")
    group_size = _grid(data.get("group_size"), f"{where}.group_size")
    constants = data.get("constants") or {}
    if not isinstance(constants, dict):
        raise DeclarationError(f"{where}.constants must map function-constant names to values")
    memory = data.get("threadgroup_memory") or {}
    if not isinstance(memory, dict) or not all(str(k).isdigit() for k in memory):
        raise DeclarationError(f"{where}.threadgroup_memory must map [[threadgroup(i)]] indices to byte counts")
    return LaunchSpec(
        kernel, tuple(buffers), threads, group_size,
        {str(k): _formula(v, f"{where}.constants.{k}") for k, v in constants.items()},
        {int(k): _formula(v, f"{where}.threadgroup_memory.{k}") for k, v in memory.items()},
    )


def _grid(value: Any, where: str) -> tuple[Formula, ...]:
    if isinstance(value, (int, str)):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise DeclarationError(f"{where} must be 1 to 3 formulas")
    return tuple(_formula(v, f"{where}[{i}]") for i, v in enumerate(value))


def _formula(value: Any, where: str) -> Formula:
    if isinstance(value, (bool, int, float)):
        return value
    if not isinstance(value, str):
        raise DeclarationError(f"{where} must be a number or a formula string, got {value!r}")
    try:
        parse(value)
    except FormulaError as e:
        raise DeclarationError(f"{where}: {e}") from None
    return value


def _names(data: Mapping[str, Any], key: str, required: bool = False) -> tuple[str, ...]:
    value = data.get(key, [])
    if required and not value:
        raise DeclarationError(f"{key} must list at least one name")
    if not isinstance(value, list):
        raise DeclarationError(f"{key} must be a list of names")
    return tuple(_identifier(v, key) for v in value)


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.replace(".", "_").isidentifier():
        raise DeclarationError(f"{where}: {value!r} is not a name")
    return value
