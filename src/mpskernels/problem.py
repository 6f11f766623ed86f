"""KernelBench-format problems: one Python file with `class Model(nn.Module)`, `get_inputs()` and
`get_init_inputs()`, whose sizes are module-level integer constants.

A `Problem` is the file's text; `Problem.at(sizes)` re-executes it with some of those constants replaced (so sizes
derived from them follow) and gives a `ProblemInstance` that builds the reference model and its inputs. Loading a
problem runs its Python code: problem files are trusted like any script the user runs.

The size rules used by the verifier and the benchmark harness live here too:
- `scaled_sizes`: the documented rule for fitting a problem into a memory budget (an emulator run, a small GPU);
- `held_out_sizes`: size variants a candidate was not shown (odd sizes, sizes around the SIMD width, size 1).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

# Constants below this are never rescaled: they are usually kernel sizes, strides, axes or head counts.
MIN_SCALED_SIZE = 16
# A rescaled size never drops below this.
SCALED_FLOOR = 8


Size = int | tuple[int, ...]  # a knob: an int, or a tuple of ints (`input_shape = (4096,)`; a list knob too)


class ProblemError(ValueError):
    """A problem file that does not follow the KernelBench format, or sizes it cannot run at."""


class ProblemLoadError(ProblemError):
    """A file in KernelBench format whose module code fails to run (a missing import, an error at the top level):
    a problem that cannot be run, which a harness reports as that problem's error rather than ending the run."""


@dataclass(frozen=True)
class Problem:
    name: str
    source: str
    path: Path | None = None
    level: int | None = None
    # The size knobs: module-level constants set to an integer literal or a tuple of them, in file order, with the
    # file's values.
    constants: Mapping[str, Size] = field(default_factory=dict)
    # Why the file, though in KernelBench format, could not be loaded ("" when it was): a harness reports it as this
    # problem's error and goes on with the others.
    load_error: str = ""

    def at(self, sizes: Mapping[str, Size] | None = None) -> "ProblemInstance":
        """The problem with `sizes` replacing the file's own constants (names it lacks are an error)."""
        sizes = dict(sizes or {})
        unknown = sorted(set(sizes) - set(self.constants))
        if unknown:
            raise ProblemError(f"problem '{self.name}' has no size constant(s) {', '.join(unknown)}; "
                               f"it has {', '.join(self.constants) or 'none'}")
        namespace = _execute(self, sizes)
        in_force = {name: namespace[name] for name in self.constants if _is_size(namespace.get(name))}
        return ProblemInstance(self, in_force, namespace)

    def __str__(self) -> str:
        return self.name


@dataclass
class ProblemInstance:
    """A problem at fixed sizes: the reference model and seeded inputs."""

    problem: Problem
    sizes: dict[str, Size]
    namespace: dict[str, Any]

    def init_inputs(self) -> list[Any]:
        return list(self.namespace["get_init_inputs"]())

    def inputs(self, seed: int) -> list[Any]:
        """get_inputs() under a fixed seed: the same seed gives the same inputs."""
        with _seeded(seed):
            return list(self.namespace["get_inputs"]())

    def reference(self, seed: int = 0) -> nn.Module:
        """The reference model in eval mode. Its weights come from `seed`; a verifier copies them into the
        candidate rather than relying on the candidate drawing the same random numbers."""
        with _seeded(seed):
            model = self.namespace["Model"](*self.init_inputs())
        return model.eval()

    def meta_sizes(self) -> tuple[int, int]:
        """(input elements, parameter elements) at these sizes, counted on the meta device (nothing allocated)."""
        with torch.device("meta"), _no_distribution_validation():
            inputs = self.namespace["get_inputs"]()
            model = self.namespace["Model"](*self.init_inputs())
        return _counted(inputs, model)

    def real_sizes(self) -> tuple[int, int]:
        """(input elements, parameter elements), counted by building the model and inputs for real (for a model
        that cannot be built on the meta device)."""
        with _seeded(0), torch.no_grad():
            return _counted(self.namespace["get_inputs"](), self.namespace["Model"](*self.init_inputs()))


def _counted(inputs: Any, model: nn.Module) -> tuple[int, int]:
    count = sum(t.numel() for t in _tensors(inputs))
    params = sum(t.numel() for t in model.state_dict().values() if isinstance(t, torch.Tensor))
    return count, params


def load_problem(path: str | Path) -> Problem:
    path = Path(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ProblemError(f"cannot read problem file {path}: {e}") from None
    return parse_problem(source, name=path.stem, path=path, level=_level_from_path(path))


def load_problem_isolated(path: str | Path) -> Problem:
    """load_problem, except that a file in KernelBench format whose code fails to load gives a Problem carrying
    `load_error` instead of raising: one broken file (a missing module) must not end a run over many."""
    path = Path(path)
    try:
        return load_problem(path)
    except ProblemLoadError as e:
        return Problem(path.stem, path.read_text(), path, _level_from_path(path), {}, load_error=str(e))


def parse_problem(source: str, name: str = "problem", path: Path | None = None, level: int | None = None) -> Problem:
    """A Problem from source text: checks the KernelBench contract, then runs the module code to read its sizes.
    Raises ProblemError for a file that is not a problem, ProblemLoadError for one whose code fails."""
    what = str(path) if path is not None else f"'{name}'"
    try:
        tree = ast.parse(source, filename=str(path or name))
    except SyntaxError as e:
        raise ProblemError(f"{what} is not a KernelBench problem (a Python file defining Model, get_inputs and "
                           f"get_init_inputs): it is not Python ({e.msg}, line {e.lineno})") from None
    defined = _top_level_names(tree)
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if n not in defined]
    if missing:
        raise ProblemError(f"{what} is not a KernelBench problem: it defines no {', '.join(missing)}")
    problem = Problem(name, source, path, level, {})
    namespace = _execute(problem, {})
    constants = {n: _as_size(namespace[n]) for n in _constant_names(tree) if _is_size(namespace.get(n))}
    return Problem(name, source, path, level, constants)


def load_problems(paths: Iterable[str | Path]) -> list[Problem]:
    """Problem files, and the problem files found (recursively, sorted) in folders. A folder's .py files that are
    not problems (helpers, __init__.py) are passed over; a file named directly must be a problem. A problem whose
    code fails to load is returned with its `load_error`, so the others still run."""
    problems = []
    for p in map(Path, paths):
        if p.is_dir():
            for file in sorted(p.rglob("*.py")):
                if file.name.startswith("_") or not _looks_like_problem(file):
                    continue
                problems.append(load_problem_isolated(file))
        elif p.exists():
            problems.append(load_problem_isolated(p))
        else:
            raise ProblemError(f"no problem file or folder at {p}")
    return problems


def scaled_sizes(problem: Problem, max_elements: int) -> dict[str, Size]:
    """The sizes to run `problem` at within a budget of `max_elements` (input plus parameter elements).

    The rule: while over budget, take the largest size that is at least MIN_SCALED_SIZE (a knob, or one entry of a
    tuple knob) and halve it together with its *tied* sizes:
    - the sizes the file sets equal to it (square matrices, broadcast partners): they stay equal;
    - the sizes the file relates to it (`related_sizes`: groups and channels, heads and width, patch and image):
      halved with it, of any size, so their ratio stays the file's.
    Never below SCALED_FLOOR for a size of MIN_SCALED_SIZE or more; odd results of those are rounded up to even so
    divisibility by 2 is kept. A tie that cannot be halved exactly (a related size that is odd or 1) is left as it
    is. Sizes below MIN_SCALED_SIZE that are not tied (kernel sizes, strides, axes) keep their values. Returns the
    knobs changed (empty when the problem fits as written); raises ProblemError if it cannot be brought under the
    budget. Halving stops where the model can no longer be built (in_channels no longer divisible by groups): the
    sizes before are the smallest.
    """
    try:
        problem.at({}).meta_sizes()
    except Exception:  # noqa: BLE001 - the model cannot be built on the meta device (it calls .item())
        return _scaled_by_real_builds(problem, max_elements)
    total, broken = None, ""
    for sizes in _halving_path(problem):
        try:
            total = sum(problem.at(sizes).meta_sizes())
        except Exception as e:  # noqa: BLE001 - a halving broke a relation the model checks (channels and groups)
            broken = f" (halving on to {sizes} breaks the model: {type(e).__name__}: {e})"
            break
        if total <= max_elements:
            return sizes
    raise ProblemError(f"problem '{problem.name}' needs {total} elements at its smallest sizes, more than "
                       f"the budget of {max_elements}{broken}")


def _scaled_by_real_builds(problem: Problem, max_elements: int) -> dict[str, Size]:
    """scaled_sizes for a model that cannot be built on the meta device (KernelBench's Swin models call .item() in
    __init__): the same halving path, counted by building the model for real, starting from the smallest sizes and
    growing while the next step still fits, so no build is much larger than the budget. A step where the model does
    not build (a size it asserts on) is passed over."""
    path = list(_halving_path(problem))
    best, errors, smallest = None, [], None
    for sizes in reversed(path):
        try:
            total = sum(problem.at(sizes).real_sizes())
        except Exception as e:  # noqa: BLE001 - this step cannot be counted; a larger one may be
            errors.append(f"{type(e).__name__}: {str(e).strip()[:120]}")
            continue
        smallest = total if smallest is None else smallest
        if total > max_elements:
            break
        best = sizes
    if best is None:
        why = (f": it needs {smallest} elements there" if smallest is not None else
               f" (building it failed: {errors[0]})" if errors else "")
        raise ProblemError(f"problem '{problem.name}' cannot be built on the meta device, and built for real it "
                           f"does not fit the budget of {max_elements} elements at its smallest sizes{why}")
    return best


def _halving_path(problem: Problem) -> Iterator[dict[str, Size]]:
    """The scaling rule's steps, from the file's sizes ({}) to the smallest it allows: each step halves the largest
    size that is at least MIN_SCALED_SIZE together with its ties. The steps depend only on the sizes, never on the
    counts, so a caller may count them in any order."""
    ties = _ties(problem)
    sizes: dict[str, Size] = {}
    frozen: set[tuple[str, int | None]] = set()
    yield dict(sizes)
    while True:
        current = {**problem.constants, **sizes}
        values = {(name, i): v for name, i, v in _entries(current)}
        shrinkable = [(v, key) for key, v in values.items()
                      if v >= MIN_SCALED_SIZE and v > SCALED_FLOOR and key not in frozen]
        if not shrinkable:
            return
        _, primary = max(shrinkable, key=lambda t: t[0])
        group = ties(primary)
        halved = {key: _halved(values[key]) for key in group}
        if any(v is None for v in halved.values()):
            frozen |= group  # halving would break a ratio the file states: leave the whole tie as it is
            continue
        for (name, index), value in halved.items():
            current[name] = _replace_entry(current[name], index, value)
            sizes[name] = current[name]
        yield dict(sizes)


def _halved(value: int) -> int | None:
    """A size halved under the scaling rule, or None when it cannot be (an odd related size, or 1)."""
    if value >= MIN_SCALED_SIZE:
        half = value // 2
        return max(SCALED_FLOOR, half + (half % 2))
    return value // 2 if value % 2 == 0 and value >= 2 else None


def _ties(problem: Problem) -> Callable[[tuple[str, int | None]], set[tuple[str, int | None]]]:
    """For a size (knob, tuple index), the sizes that scale with it: those the file sets equal to it (sizes of at
    least MIN_SCALED_SIZE), and those the file relates to it (related_sizes), transitively."""
    entries = _entries(problem.constants)
    links: dict[tuple[str, int | None], set[tuple[str, int | None]]] = {(n, i): set() for n, i, _ in entries}
    for a_name, a_index, a in entries:
        for b_name, b_index, b in entries:
            if a == b >= MIN_SCALED_SIZE:
                links[(a_name, a_index)].add((b_name, b_index))
    for a_name, b_name in related_sizes(problem):
        for a_key in (k for k in links if k[0] == a_name):
            for b_key in (k for k in links if k[0] == b_name):
                links[a_key].add(b_key)
                links[b_key].add(a_key)

    def closure(key: tuple[str, int | None]) -> set[tuple[str, int | None]]:
        seen, todo = {key}, [key]
        while todo:
            for other in links[todo.pop()] - seen:
                seen.add(other)
                todo.append(other)
        return seen

    return closure


# torch.nn modules whose arguments must keep a ratio: (the part, the whole it divides).
_RELATED_ARGUMENTS = {
    "GroupNorm": [("num_groups", "num_channels")],
    "MultiheadAttention": [("num_heads", "embed_dim")],
    "TransformerEncoderLayer": [("nhead", "d_model")],
    "TransformerDecoderLayer": [("nhead", "d_model")],
    "Transformer": [("nhead", "d_model")],
    **{conv: [("groups", "in_channels"), ("groups", "out_channels")]
       for conv in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")},
}


def related_sizes(problem: Problem) -> set[tuple[str, str]]:
    """Pairs of knobs whose ratio the file states, read from its code (names: KernelBench passes each size under
    the name of its module-level constant):
    - a division or remainder of one by the other (`C // n_head`, `image_size % patch_size == 0`);
    - the arguments of a torch.nn module that must divide each other (GroupNorm's groups and channels, attention's
      heads and width, a grouped conv's groups and channels)."""
    knobs = set(problem.constants)
    pairs: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(problem.source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.FloorDiv, ast.Mod, ast.Div)):
            a, b = _knob_named(node.left, knobs), _knob_named(node.right, knobs)
            if a and b and a != b:
                pairs.add((b, a))
        elif isinstance(node, ast.Call):
            pairs |= _related_arguments(node, knobs)
    return pairs


def _knob_named(node: ast.expr, knobs: set[str]) -> str | None:
    """The knob an expression names: `n_head`, `self.n_head`, `config.n_head`."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name if name in knobs else None


def _related_arguments(call: ast.Call, knobs: set[str]) -> set[tuple[str, str]]:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if name not in _RELATED_ARGUMENTS:
        return set()
    try:
        bound = inspect.signature(getattr(nn, name)).bind_partial(*call.args, **{
            k.arg: k.value for k in call.keywords if k.arg is not None}).arguments
    except TypeError:  # *args, or arguments this torch version does not take: nothing to read
        return set()
    out = set()
    for part, whole in _RELATED_ARGUMENTS[name]:
        a = _knob_named(bound[part], knobs) if isinstance(bound.get(part), ast.expr) else None
        b = _knob_named(bound[whole], knobs) if isinstance(bound.get(whole), ast.expr) else None
        if a and b and a != b:
            out.add((a, b))
    return out


def held_out_sizes(problem: Problem, base: Mapping[str, Size] | None = None) -> list[dict[str, Size]]:
    """Size variants of `base` (default: the file's sizes) a candidate was not shown: every size (>=
    MIN_SCALED_SIZE, tuple entries included) made odd, set just below and just above a multiple of the SIMD width,
    and the first knob (by KernelBench convention the batch size) set to 1. Variants the reference cannot run are
    the caller's to skip (a size that breaks a divisibility the model needs is not a valid test). Each variant
    names every knob."""
    sizes = {**problem.constants, **(base or {})}
    variants: list[dict[str, Size]] = []

    def add(change: Callable[[int], int]) -> None:
        variant = dict(sizes)
        for name, index, value in _entries(sizes):
            if value >= MIN_SCALED_SIZE:
                variant[name] = _replace_entry(variant[name], index, change(value))
        if variant != sizes and variant not in variants:
            variants.append(variant)

    add(_odd_below)
    add(lambda v: _simd_neighbour(v, -1))
    add(lambda v: _simd_neighbour(v, +1))
    first = next(iter(sizes), None)
    if first is not None and isinstance(sizes[first], int) and sizes[first] != 1:
        variant = {**sizes, first: 1}
        if variant not in variants:
            variants.append(variant)
    return variants


def _is_size(value: Any) -> bool:
    if type(value) is int:
        return True
    return isinstance(value, (tuple, list)) and bool(value) and all(type(v) is int for v in value)


def _as_size(value: Any) -> Size:
    """A knob's value as the harness keeps it: a list of sizes (`layer_sizes = [4096, 4096]`) as a tuple, which the
    file gets back as a list (_ReplaceConstants)."""
    return tuple(value) if isinstance(value, list) else value


def _entries(sizes: Mapping[str, Size]) -> list[tuple[str, int | None, int]]:
    """(knob, index within a tuple knob or None, value) for every single size."""
    out: list[tuple[str, int | None, int]] = []
    for name, value in sizes.items():
        if isinstance(value, tuple):
            out += [(name, i, v) for i, v in enumerate(value)]
        else:
            out.append((name, None, value))
    return out


def _replace_entry(value: Size, index: int | None, new: int) -> Size:
    if index is None:
        return new
    return value[:index] + (new,) + value[index + 1:]


def _odd_below(v: int) -> int:
    return v - 1 if v % 2 == 0 else v - 2 if v > 3 else v


def _simd_neighbour(v: int, step: int) -> int:
    """31/33 around 32, 63/65 around 64, ...: the multiple of 32 nearest below v (at least 32), plus `step`."""
    multiple = max(32, v // 32 * 32)
    return multiple + step


def _execute(problem: Problem, sizes: Mapping[str, int]) -> dict[str, Any]:
    tree = ast.parse(problem.source, filename=str(problem.path or problem.name))
    if sizes:
        tree = _ReplaceConstants(sizes).visit(tree)
        ast.fix_missing_locations(tree)
    module = types.ModuleType(f"mpskernels_problem_{problem.name}")
    module.__file__ = str(problem.path) if problem.path else f"<{problem.name}>"
    try:
        exec(compile(tree, module.__file__, "exec"), module.__dict__)  # noqa: S102 - problem files are the user's
    except Exception as e:
        raise ProblemLoadError(f"problem '{problem.name}' failed to load{_at(sizes)}: {type(e).__name__}: {e}") from e
    return module.__dict__


class _ReplaceConstants(ast.NodeTransformer):
    """Replaces the values the knobs are given at the top level (`NAME = ...`, or one element of `a, b = x, y`); nested
    assignments are left alone."""

    def __init__(self, sizes: Mapping[str, int]):
        self.sizes = sizes

    def visit_Module(self, node: ast.Module) -> ast.Module:
        for stmt in node.body:
            for name, original, replace in _assignments(stmt):
                if name in self.sizes:
                    value = self.sizes[name]
                    if original is not None and _is_list_form(original):  # the file made a list: it gets one
                        replace(ast.List(elts=[ast.Constant(v) for v in value], ctx=ast.Load()))
                    else:
                        replace(ast.Constant(value))
        return node


def _assignments(stmt: ast.stmt) -> list[tuple[str, ast.expr | None, Callable[[ast.expr], None]]]:
    """(name, the expression it is given or None when that cannot be told apart, a setter for that expression) for
    each name a top-level statement assigns: `a = b = x`, `a: int = x`, and `a, b = x, y` element by element (the
    way KernelBench writes `height, width = 128, 128`)."""
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return [(stmt.target.id, stmt.value, lambda v, s=stmt: setattr(s, "value", v))]
    if not isinstance(stmt, ast.Assign):
        return []
    out: list = []
    for target in stmt.targets:
        if isinstance(target, ast.Name):
            out.append((target.id, stmt.value, lambda v, s=stmt: setattr(s, "value", v)))
        elif isinstance(target, ast.Tuple):
            paired = isinstance(stmt.value, ast.Tuple) and len(stmt.value.elts) == len(target.elts) and \
                not any(isinstance(e, ast.Starred) for e in target.elts)
            for i, element in enumerate(target.elts):
                if isinstance(element, ast.Name):
                    value = stmt.value.elts[i] if paired else None
                    out.append((element.id, value, lambda v, s=stmt, i=i: s.value.elts.__setitem__(i, v)))
    return out


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
    return names


def _constant_names(tree: ast.Module) -> list[str]:
    """The size knobs: names given an integer, a tuple or list of integers (`layer_sizes = [4096, 4096]`, also
    `[1024] * 16`), or arithmetic on integer literals only (`N = 2048 * 2`) at the top level, by plain assignment
    or tuple unpacking (`height, width = 128, 128`), in file order, not starting with '_'.
    Constants computed from others (`hidden = dim * 4`) are not knobs: they follow when the knobs change."""
    names: list[str] = []
    for stmt in tree.body:
        for name, value, _ in _assignments(stmt):
            if name.startswith("_"):
                continue
            literal = value is not None and _is_literal_size(value)
            if literal and name not in names:
                names.append(name)
            elif not literal and name in names:
                names.remove(name)  # reassigned from an expression: not a knob
    return names


# Arithmetic that keeps integer literals integers: `2048 * 2`, `1 << 12`, `-1`, `(4096 + 64) // 2`.
_INT_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Pow, ast.LShift, ast.Mod)


def _is_literal_size(node: ast.expr) -> bool:
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(_is_literal_int(e) for e in node.elts)
    return _is_list_form(node) or _is_literal_int(node)


def _is_list_form(node: ast.expr) -> bool:
    """A list of integer literals, or one repeated a literal number of times (`[1024] * 16`)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _is_list_form(node.left) and _is_literal_int(node.right)
    return isinstance(node, ast.List) and bool(node.elts) and all(_is_literal_int(e) for e in node.elts)


def _is_literal_int(node: ast.expr) -> bool:
    """An integer literal, or arithmetic on integer literals only (it names no other constant)."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal_int(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _INT_OPERATORS):
        return _is_literal_int(node.left) and _is_literal_int(node.right)
    return False


def _looks_like_problem(file: Path) -> bool:
    try:
        names = _top_level_names(ast.parse(file.read_text()))
    except (SyntaxError, OSError, UnicodeDecodeError):
        return False
    return {"Model", "get_inputs", "get_init_inputs"} <= names


def _level_from_path(path: Path) -> int | None:
    for part in reversed(path.parts[:-1]):
        digits = part.lower().removeprefix("level").lstrip("_-")
        if part.lower().startswith("level") and digits.isdigit():
            return int(digits)
    return None


def _tensors(values: Any) -> list[torch.Tensor]:
    leaves, _ = torch.utils._pytree.tree_flatten(values)
    return [v for v in leaves if isinstance(v, torch.Tensor)]


def _at(sizes: Mapping[str, int]) -> str:
    return f" at sizes {dict(sizes)}" if sizes else ""


@contextlib.contextmanager
def _no_distribution_validation() -> Iterator[None]:
    """torch.distributions checks its parameters with a data-dependent .item(), which meta tensors cannot answer;
    counting sizes needs no validation."""
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


class _seeded:
    """Seeds torch's global generator for a block and restores its state afterwards (problem code draws from it)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self) -> None:
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: Any) -> None:
        torch.random.set_rng_state(self.state)
