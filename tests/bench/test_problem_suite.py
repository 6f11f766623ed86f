"""The project's own problem suite (benches/problems): every file is a KernelBench problem, fits a 16 GB Mac as
written, scales to the emulator's budget, and its reference runs there."""

from __future__ import annotations

import collections

import pytest
import torch

from mpskernels.bench.machine import BYTES_PER_ELEMENT_BUDGET, EMULATOR_MAX_ELEMENTS
from mpskernels.problem import load_problems, scaled_sizes

from .packs import SUITE

PROBLEMS = load_problems([SUITE])
# A 16 GB Mac lets the GPU use about two thirds of its memory; the harness budgets BYTES_PER_ELEMENT_BUDGET per
# element, so problems within this many elements run unscaled there.
MAC_16GB_ELEMENTS = (16 * 2**30 * 2 // 3) // BYTES_PER_ELEMENT_BUDGET


def test_the_suite_has_three_levels_of_enough_problems():
    levels = collections.Counter(p.level for p in PROBLEMS)
    assert sum(levels.values()) >= 60
    assert set(levels) == {1, 2, 3} and min(levels.values()) >= 10, levels
    names = [p.name for p in PROBLEMS]
    assert len(set(names)) == len(names)  # packs find their problem by name
    assert all(p.constants for p in PROBLEMS)  # every problem has size knobs to scale


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"level{p.level}/{p.name}")
def test_a_problem_fits_as_written_and_runs_at_emulator_sizes(problem):
    inputs, params = problem.at().meta_sizes()
    assert inputs + params <= MAC_16GB_ELEMENTS, f"{inputs + params:,} elements do not fit a 16 GB Mac"
    sizes = scaled_sizes(problem, EMULATOR_MAX_ELEMENTS)
    instance = problem.at(sizes)
    assert sum(instance.meta_sizes()) <= EMULATOR_MAX_ELEMENTS
    with torch.inference_mode():
        out = instance.reference(0)(*instance.inputs(0))
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    assert leaves and all(t.numel() > 0 for t in leaves)
    assert all(t.isfinite().all() for t in leaves if t.is_floating_point())
