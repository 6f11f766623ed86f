"""Models that call .item() while they are built (KernelBench level3/29 SwinMLP, 30 SwinTransformerV2: the
stochastic depth rule `[x.item() for x in torch.linspace(0, rate, sum(depths))]`) cannot be counted on the meta
device; the harness counts them by building them for real, from the smallest sizes up (issue 17 item 4)."""

from __future__ import annotations

import pytest

from mpskernels.bench import BenchOptions, environment, optimize_candidate, run_bench
from mpskernels.bench.results import OK
from mpskernels.problem import ProblemError, load_problem, scaled_sizes

SWIN_LIKE = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, embed_dim, depths, drop_path_rate=0.1):
        super().__init__()
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]  # stochastic depth decay rule
        self.rates = dpr
        self.blocks = nn.Sequential(*[nn.Linear(embed_dim, embed_dim) for _ in range(sum(depths))])

    def forward(self, x):
        return self.blocks(x)


batch_size = 64
embed_dim = 256
depths = [2, 2]


def get_inputs():
    return [torch.rand(batch_size, embed_dim)]


def get_init_inputs():
    return [embed_dim, depths]
'''


def test_a_model_that_calls_item_while_built_is_scaled_by_building_it_for_real(tmp_path):
    path = tmp_path / "29_SwinMLP.py"
    path.write_text(SWIN_LIKE)
    problem = load_problem(path)
    with pytest.raises(RuntimeError):
        problem.at({}).meta_sizes()  # the case: meta tensors cannot answer .item()
    sizes = scaled_sizes(problem, 20_000)
    assert sizes, "the file's sizes are far over the budget"
    inputs, params = problem.at(sizes).real_sizes()
    assert inputs + params <= 20_000
    # the largest step of the rule that fits: one step larger is over the budget
    assert sizes["embed_dim"] * 2 > 0 and sum(problem.at({**sizes, "embed_dim": sizes["embed_dim"] * 2})
                                              .real_sizes()) > 20_000


def test_such_a_model_runs_in_the_bench(tmp_path):
    path = tmp_path / "29_SwinMLP.py"
    path.write_text(SWIN_LIKE)
    report = run_bench([load_problem(path)], [optimize_candidate()], environment("cpu", 20_000),
                       BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False))
    (result,) = report.problems
    assert result.status == OK, result.reason
    assert result.scaled and result.candidates[0].correct


def test_too_large_even_at_its_smallest_sizes_is_said_so(tmp_path):
    path = tmp_path / "29_SwinMLP.py"
    path.write_text(SWIN_LIKE)
    with pytest.raises(ProblemError, match="cannot be built on the meta device"):
        scaled_sizes(load_problem(path), 100)
