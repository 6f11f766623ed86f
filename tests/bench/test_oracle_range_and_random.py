"""The float64 oracle (issue 17 item 6): values beyond the dtype's range, random state drawn inside forward, and a
model the oracle cannot run, which is the harness's failure, never the candidate's."""

from __future__ import annotations

import torch

from mpskernels.bench import BenchOptions, environment, optimize_candidate, run_bench
from mpskernels.bench.results import HARNESS_FAILURE, NOTHING_SWAPPED
from mpskernels.problem import load_problem
from mpskernels.verify import VerifyOptions, verify_problem

# KernelBench level1/90_cumprod's shape: a cumulative product over a long row. Under "large" inputs the product
# leaves float32's range (float64 says -9e38, float32 -inf).
CUMPROD = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.cumprod(x, dim=self.dim)


batch_size = 4
input_shape = (64,)
dim = 1


def get_inputs():
    return [torch.rand(batch_size, *input_shape)]


def get_init_inputs():
    return [dim]
'''

# KernelBench level3/35_LSTM's shape: the initial state is drawn with torch.randn inside forward.
LSTM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, output_size):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x, h0=None, c0=None):
        batch_size = x.size(0)
        if h0 is None:
            h0 = torch.randn(self.num_layers, batch_size, self.hidden_size, device=x.device)
        if c0 is None:
            c0 = torch.randn(self.num_layers, batch_size, self.hidden_size, device=x.device)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])


batch_size = 2
sequence_length = 6
input_size = 8
hidden_size = 8
num_layers = 2
output_size = 3


def get_inputs():
    return [torch.rand(batch_size, sequence_length, input_size)]


def get_init_inputs():
    return [input_size, hidden_size, num_layers, output_size]
'''

# A model that insists on float32 (an explicit dtype), which the float64 oracle cannot run.
FLOAT32_ONLY = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x) + torch.ones(8, 8, dtype=torch.float32) @ x.t()


batch_size = 8


def get_inputs():
    return [torch.rand(batch_size, 8)]


def get_init_inputs():
    return []
'''

QUICK = VerifyOptions(seeds=(0,), distributions=("as-given", "normal", "large"), held_out=False,
                      require_kernel=False)


def _pytorch_itself(reference, init_inputs):
    return reference


def test_pytorchs_own_answer_passes_where_float64_leaves_the_dtypes_range(tmp_path):
    path = tmp_path / "90_cumprod.py"
    path.write_text(CUMPROD)
    problem = load_problem(path)
    big = problem.at({}).inputs(0)[0].double().mul(100).cumprod(1)
    verdict = verify_problem(problem, _pytorch_itself, QUICK)
    assert verdict.correct, verdict.feedback()
    # the case it is about: the "large" inputs do overflow float32 here
    large = torch.randn(4, 64, dtype=torch.float64) * 100
    assert large.cumprod(1).abs().max() > torch.finfo(torch.float32).max and big is not None


def test_a_candidate_that_misses_an_infinity_still_fails(tmp_path):
    path = tmp_path / "90_cumprod.py"
    path.write_text(CUMPROD)

    class Clamped(torch.nn.Module):  # finite where float32 overflows: not PyTorch's answer
        def forward(self, x):
            return torch.cumprod(x, 1).clamp(-3e38, 3e38)

    verdict = verify_problem(load_problem(path), lambda ref, init: Clamped(), QUICK)
    assert not verdict.correct and not verdict.harness_error
    assert "large" in verdict.feedback()


def test_random_state_drawn_in_forward_is_drawn_alike_in_the_oracle(tmp_path):
    path = tmp_path / "35_LSTM.py"
    path.write_text(LSTM)
    verdict = verify_problem(load_problem(path), _pytorch_itself, QUICK)
    assert not verdict.harness_error, verdict.harness_error
    assert verdict.correct, verdict.feedback()


def test_an_oracle_that_cannot_run_is_a_harness_failure_not_a_wrong_candidate(tmp_path):
    path = tmp_path / "1_float32_only.py"
    path.write_text(FLOAT32_ONLY)
    verdict = verify_problem(load_problem(path), _pytorch_itself, QUICK)
    assert not verdict.correct and verdict.harness_error and not verdict.failures
    assert "float64 oracle fails" in verdict.harness_error
    report = run_bench([load_problem(path)], [optimize_candidate()], environment("cpu", 4096),
                       BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False))
    (candidate,) = report.problems[0].candidates
    assert candidate.outcome == HARNESS_FAILURE and candidate.outcome != NOTHING_SWAPPED
    (summary,) = report.as_dict()["summary"]
    assert summary["harness_failure"] == 1 and summary["wrong"] == 0
