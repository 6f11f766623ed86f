"""A swap whose kernel cannot run at the scaled sizes (attention at a head dim it has no kernel for: its constraint
sends every call to PyTorch) is "kernel not exercised at these sizes", never a verified kernel; where a larger
budget reaches sizes where the kernel runs, it is verified there (issue 17 item 7)."""

from __future__ import annotations

from mpskernels.bench import BenchOptions, environment, optimize_candidate, run_bench
from mpskernels.bench.report import markdown
from mpskernels.bench.results import KERNEL_VERIFIED, NOT_EXERCISED
from mpskernels.kernels.attention import HEAD_DIMS
from mpskernels.problem import load_problem, scaled_sizes

# Attention with the head dim as a size constant of its own: scaling halves it like any other size.
SDPA = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


batch_size = 1
n_heads = 2
seq_len = 64
head_dim = 64


def get_inputs():
    return [torch.randn(batch_size, n_heads, seq_len, head_dim) for _ in range(3)]


def get_init_inputs():
    return []
'''

QUICK = BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False, sensitivity=False)


def _problem(tmp_path, source=SDPA):
    path = tmp_path / "1_sdpa.py"
    path.write_text(source)
    return load_problem(path)


def test_a_swap_that_never_launches_is_not_a_verified_kernel(tmp_path):
    # head dim 32 (KernelBench's level3/31 vision attention has it): no size the harness may try has a kernel
    problem = _problem(tmp_path, SDPA.replace("head_dim = 64", "head_dim = 32"))
    assert 32 not in HEAD_DIMS
    report = run_bench([problem], [optimize_candidate()], environment("cpu", 4096), QUICK)
    (candidate,) = report.problems[0].candidates
    # optimize() found the attention call but kept PyTorch: the kernel's constraint refused head dim 32
    assert candidate.correct and not candidate.kernels and candidate.verdict["launches"] == 0
    assert any("head_dim 32 has no kernel" in n for n in candidate.not_launched)
    assert candidate.outcome == NOT_EXERCISED  # not "nothing swapped", and never a verified kernel
    (summary,) = report.as_dict()["summary"]
    assert summary["kernel_verified"] == 0 and summary["not_exercised"] == 1
    assert "kernel not exercised" in markdown(report)


def test_swapped_kernels_that_launch_nowhere_are_not_exercised():
    from mpskernels.bench.results import CandidateResult

    launched_none = CandidateResult("optimize", "optimize", True, {"launches": 0, "comparisons": 3},
                                    kernels={"attention": 1})
    assert launched_none.outcome == NOT_EXERCISED
    launched = CandidateResult("optimize", "optimize", True, {"launches": 2, "comparisons": 3},
                               kernels={"attention": 1})
    assert launched.outcome == KERNEL_VERIFIED


def test_larger_sizes_where_the_kernel_runs_are_preferred(tmp_path):
    problem = _problem(tmp_path)
    assert scaled_sizes(problem, 4096)["head_dim"] not in HEAD_DIMS
    report = run_bench([problem], [optimize_candidate()], environment("cpu", 4096), QUICK)
    (candidate,) = report.problems[0].candidates
    assert candidate.outcome == KERNEL_VERIFIED, candidate.feedback
    assert candidate.verdict["launches"] > 0 and candidate.verdict["sizes"]["head_dim"] in HEAD_DIMS
    assert any("no swapped kernel launched" in f for f in candidate.flags)


def test_larger_sizes_stop_where_the_activations_outgrow_the_budget(tmp_path, monkeypatch):
    """The budget counts inputs and parameters; an upsampling model's activations grow far faster (KernelBench's
    level2/49 ConvTranspose3d took 24 GB at 64x). Retries for a kernel's sake stop at ACTIVATION_FACTOR x the budget."""
    from mpskernels.bench import runner

    problem = _problem(tmp_path)
    monkeypatch.setattr(runner, "ACTIVATION_FACTOR", 1)  # the 4x larger sizes already make tensors past it
    report = run_bench([problem], [optimize_candidate()], environment("cpu", 4096), QUICK)
    (candidate,) = report.problems[0].candidates
    assert candidate.outcome == NOT_EXERCISED and not candidate.flags
