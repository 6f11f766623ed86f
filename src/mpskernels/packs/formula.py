"""A restricted evaluator for the size formulas in kernel pack declarations ("x.shape[-1]", "cdiv(n, 256)").

A pack is data: loading one into a user's process must never run code it carries. Formulas are parsed with
Python's grammar but interpreted here node by node; only arithmetic, comparisons, conditionals, tuples, indexing
and slicing of shapes, a few attributes of tensors (shape, ndim, dtype, numel()) and a few pure functions exist.
Anything else is a FormulaError naming the formula.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

MAX_POWER = 64  # exponents above this are refused (a formula must not be able to build huge numbers)


class FormulaError(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    """What a formula may know of a tensor: its shape and dtype, never its data."""

    shape: tuple[int, ...]
    dtype: str  # "float32", "float16", ...

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _rows(t: TensorInfo) -> int:
    """Elements divided by the last dimension: the row count of a row-wise op."""
    return t.numel() // t.shape[-1] if t.shape and t.shape[-1] else 0


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "len": len, "int": int, "cdiv": _cdiv, "prod": math.prod, "rows": _rows,
    "round_up": lambda a, b: _cdiv(a, b) * b,
}
DTYPE_NAMES = ("float32", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
           ast.Mod: operator.mod, ast.Div: operator.truediv, ast.Pow: operator.pow,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


@lru_cache(maxsize=1024)
def parse(formula: str) -> ast.expr:
    """The formula's syntax tree, checked to use only what the evaluator interprets."""
    if not isinstance(formula, str):
        raise FormulaError(f"a formula must be a string, got {formula!r}")
    try:
        tree = ast.parse(formula.strip(), mode="eval").body
    except SyntaxError as e:
        raise FormulaError(f"formula {formula!r} is not valid: {e.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr not in ("shape", "ndim", "dtype", "numel"):
            raise FormulaError(f"formula {formula!r}: attribute .{node.attr} is not allowed "
                               "(tensors offer .shape, .ndim, .dtype, .numel())")
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                or isinstance(node.func, ast.Attribute) and node.func.attr == "numel") or \
                isinstance(node, ast.Call) and node.keywords:
            raise FormulaError(f"formula {formula!r}: only {', '.join(sorted(FUNCTIONS))} and .numel() may be "
                               "called, without keywords")
    return tree


def evaluate(formula: str | int | float | bool, names: Mapping[str, Any]) -> Any:
    """The formula's value with `names` bound (tensors as TensorInfo, numbers as themselves). Literal numbers and
    booleans in the declaration pass through unchanged."""
    if isinstance(formula, (bool, int, float)):
        return formula
    return _Evaluator(formula, names).eval(parse(formula))


class _Evaluator:
    def __init__(self, formula: str, names: Mapping[str, Any]):
        self.formula, self.names = formula, names

    def fail(self, why: str) -> FormulaError:
        return FormulaError(f"formula {self.formula!r}: {why}")

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(f"{type(node).__name__} expressions are not allowed")
        try:
            return method(node)
        except FormulaError:
            raise
        except (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError) as e:
            raise self.fail(f"{type(e).__name__}: {e}") from None

    def _Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, bool, str)):
            raise self.fail(f"constant {node.value!r} is not allowed")
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        if node.id in DTYPE_NAMES:
            return node.id
        raise self.fail(f"unknown name {node.id!r} (known: {', '.join(sorted(self.names)) or 'none'})")

    def _Attribute(self, node: ast.Attribute) -> Any:
        value = self.eval(node.value)
        if not isinstance(value, TensorInfo):
            raise self.fail(f".{node.attr} of a {type(value).__name__}; only tensors have attributes")
        return getattr(value, node.attr)

    def _Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):  # t.numel()
            if node.args:
                raise self.fail("numel() takes no arguments")
            return self._Attribute(node.func)()
        return FUNCTIONS[node.func.id](*(self.eval(a) for a in node.args))

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        if op is operator.pow and (not isinstance(right, (int, float)) or abs(right) > MAX_POWER):
            raise self.fail(f"exponent {right!r} is too large")
        if op is operator.mul and (isinstance(left, (tuple, str)) or isinstance(right, (tuple, str))):
            raise self.fail("tuples and strings cannot be repeated")
        return op(left, right)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        return op(self.eval(node.operand))

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.eval(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            fn = _COMPARE.get(type(op))
            if fn is None:
                raise self.fail(f"comparison {type(op).__name__} is not allowed")
            right = self.eval(comparator)
            if not fn(left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.eval(e) for e in node.elts)

    _List = _Tuple

    def _Subscript(self, node: ast.Subscript) -> Any:
        value = self.eval(node.value)
        if not isinstance(value, tuple):
            raise self.fail("only shapes and tuples can be indexed")
        return value[self.eval(node.slice)]

    def _Slice(self, node: ast.Slice) -> slice:
        part = lambda n: None if n is None else self.eval(n)  # noqa: E731
        return slice(part(node.lower), part(node.upper), part(node.step))
