"""Seeded, bounded fuzz of every op on the emulator against float64 oracles written from the documented formulas
(tests/fuzz/oracles.py, not the ops' own references). Each failure is one line that replays the case:

    PYTHONPATH=src:tests python -c "from fuzz.test_fuzz import replay; replay('layer_norm', 17)"

CALLS sets the number of calls per op (small shapes; with a warm kernel cache all of them take under a minute on
two cores)."""

from __future__ import annotations

import pytest
import torch

from fuzz import oracles
from fuzz.cases import describe, make_case
from mpskernels import registry
from mpskernels.kernels import FAMILIES
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare, tolerance_for

CALLS = {f.name: 150 for f in FAMILIES}
CALLS["attention"] = 100  # the costliest per call (about 40 ms on the emulator)
CALLS["quantized_linear"] = 60
CALLS["rope_kv_append"] = 100  # rope's cases again, with the append
# ops writing their first arguments in place: how many (they are the outputs, and may change)
MUTATED = {"kv_cache_append": 2, "rope_kv_append": 4}


def rounded_to(expected: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float64 expectation, except where it lies beyond the dtype's range: there the dtype's own rounding
    (+-inf) is the right answer."""
    limit = torch.finfo(dtype).max
    return torch.where(expected.abs() > limit, expected.to(dtype).to(torch.float64), expected)


def slack(op: str, args: tuple, dtype: torch.dtype, output: int) -> torch.Tensor | None:
    """Where an fp32 evaluation of the formula cancels, its rounding is relative to the terms, not the result.
    attention: a weighted mean of v (v of both signs cancels): relative to softmax(s) @ |v|, plus the fp32 scores'
    own error (|s| * 2^-23, carried into every probability). rope: x1 c - x2 s, relative to |x1 c| + |x2 s|."""
    if op == "attention":
        magnitude, score = oracles.attention_magnitude(*args)
        return (tolerance_for(dtype).rtol + score * 2.0**-22) * magnitude
    if op == "quantized_linear":  # an fp32 sum of K products: at most K units of 2^-24 of sum |x w| (+ |bias|)
        return oracles.quantized_linear_magnitude(*args) * (args[0].shape[-1] + 1) * 2.0**-24
    if op in ("rope", "rope_kv_append"):
        return getattr(oracles, op)(*args, magnitude=True)[output] * 2.0**-21
    return None


def outputs_of(op: str, args: tuple, out) -> tuple[torch.Tensor, ...]:
    if op in MUTATED:
        return args[:MUTATED[op]]
    return out if isinstance(out, tuple) else (out,)


def check(op: str, index: int) -> str | None:
    """None if the case passes, else the one-line reproducer with what went wrong."""
    case = make_case(op, index)
    args = tuple(a.clone() if isinstance(a, torch.Tensor) and i < MUTATED.get(op, 0) else a
                 for i, a in enumerate(case.args))
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in case.args]
    expected = getattr(oracles, op)(*case.args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    where = (f"PYTHONPATH=src:tests python -c \"from fuzz.test_fuzz import replay; replay({op!r}, {index})\"  "
             f"# {case.note}: {describe(case.args)}")
    try:
        with use_backend("emulator"):
            out = registry.op(op)(*args)
    except Exception as e:  # every case is a valid call
        return f"{where}: raised {type(e).__name__}: {e}"
    for i, (got, want) in enumerate(zip(outputs_of(op, args, out), expected)):
        dtype = got.dtype
        if op == "attention":  # rows whose fp32 dot products may overflow on the way are outside the contract
            outside = oracles.attention_unspecified_rows(*case.args)
            got, want = got.masked_fill(outside, 0.0), want.masked_fill(outside, 0.0)
        result = compare(got, rounded_to(want, dtype), dtype, slack=slack(op, case.args, dtype, i))
        if not result.ok:
            return f"{where}: output {i}: {result}"
    for i, (a, b) in enumerate(zip(case.args, before)):
        if b is not None and i >= MUTATED.get(op, 0) and not torch.equal(a.nan_to_num(), b.nan_to_num()):
            return f"{where}: input {i} was modified"
    return None


def replay(op: str, index: int) -> None:
    """Runs one case and prints its verdict (the reproducer of a failure)."""
    print(check(op, index) or f"{op} case {index}: ok")


def test_every_op_is_fuzzed():
    assert {f.name for f in FAMILIES} <= set(CALLS) and sum(CALLS.values()) >= 1000


# One test per op, so that pytest-xdist spreads them over the workers (as one test they took 4 minutes of one
# worker on the 2-core CI machine with a cold kernel cache).
@pytest.mark.parametrize("op", list(CALLS))
def test_fuzz_op_on_the_emulator(op, monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)
    failures = [message for index in range(CALLS[op]) if (message := check(op, index))]
    assert not failures, f"{len(failures)} of {CALLS[op]} fuzzed calls of {op} failed:\n" + "\n".join(failures[:40])
