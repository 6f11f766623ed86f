"""The verifier accepts honest kernels and rejects every known way of cheating (shared/notes/background.md)."""

from __future__ import annotations

import pytest
import torch

import mpskernels
from mpskernels.problem import parse_problem
from mpskernels.verify import VerifyOptions, candidate_from_class, check_candidate_source, verify_problem

from . import candidates as c
from problem_sources import RMS_NORM, SCALE_CLAMP, SHIFT_BY_OFFSET


@pytest.fixture(autouse=True)
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


def verify(source: str, cls, **options):
    return verify_problem(parse_problem(source), candidate_from_class(cls), VerifyOptions(**options))


def test_an_honest_kernel_passes_every_check():
    verdict = verify(SCALE_CLAMP, c.ScaleClamp)
    assert verdict.correct, verdict.feedback()
    # 3 seeds x 6 distributions, the input-sensitivity rerun, and held-out sizes (2 cases each).
    assert verdict.comparisons >= 3 * 6 + 1 + 2
    assert verdict.launches >= verdict.comparisons
    assert verdict.sizes == {"batch_size": 4, "dim": 64}
    assert any(check.name.startswith("outputs match (held-out") for check in verdict.checks)
    assert verdict.max_abs == 0.0


def test_an_honest_reduction_kernel_passes_within_the_float32_tolerance():
    verdict = verify(RMS_NORM, c.RmsNorm)
    assert verdict.correct, verdict.feedback()
    assert 0.0 < verdict.max_rel < 1e-4


@pytest.mark.parametrize("trick", sorted(c.CHEATS_ON_SCALE_CLAMP))
def test_every_cheat_is_rejected(trick):
    verdict = verify(SCALE_CLAMP, c.CHEATS_ON_SCALE_CLAMP[trick])
    assert not verdict.correct
    assert verdict.failures, "a rejection names the failed check"


@pytest.mark.parametrize("trick, check", [
    ("drops a clamp the shown inputs never trigger", "output 0 matches the reference (seed 0, normal)"),
    ("hard-codes the shown size", "output 0 matches the reference (held-out"),
    ("writes over its input and returns it", "inputs unchanged (seed 0, as-given)"),
    ("mutates its input", "inputs unchanged (seed 0, as-given)"),
    ("no-op kernel on an uninitialised output", "output 0 matches the reference (seed 0, as-given)"),
    ("calls the PyTorch op", "candidate launches a kernel (seed 0, as-given)"),
    ("kernel written but never launched", "candidate launches a kernel (seed 0, as-given)"),
    ("launches a kernel but returns PyTorch's result", "candidate computes with its own kernels"),
    ("returns a cached result", "output 0 matches the reference (seed 0, normal)"),
    ("wrong output shape", "output 0 shape and dtype (seed 0, as-given)"),
])
def test_each_cheat_is_caught_by_the_check_aimed_at_it(trick, check):
    verdict = verify(SCALE_CLAMP, c.CHEATS_ON_SCALE_CLAMP[trick])
    assert verdict.failures[0].name.startswith(check), verdict.feedback()


def test_the_op_check_names_the_replaced_ops():
    verdict = verify(SCALE_CLAMP, c.LaunchesThenCallsTheOp)
    assert "clamp" in verdict.failures[0].detail and "mul" in verdict.failures[0].detail


def test_allowed_ops_let_a_candidate_keep_part_of_the_reference():
    verdict = verify(SCALE_CLAMP, c.LaunchesThenCallsTheOp, allowed_ops=frozenset({"clamp", "mul"}))
    assert verdict.correct, verdict.feedback()


def test_a_candidate_that_ignores_an_input_fails_the_sensitivity_check():
    verdict = verify(SHIFT_BY_OFFSET, c.ShiftIgnoresOffset, seeds=(0,), distributions=("as-given",),
                     held_out=False)
    assert not verdict.correct
    # The first comparison may already fail (the offset is rarely all zeros); with a zero offset only the
    # sensitivity rerun can tell. Either way the feedback points at the input.
    assert any("input 1" in f.name or "input 1" in f.detail or "matches" in f.name for f in verdict.failures)


def test_sensitivity_alone_catches_an_ignored_input_when_the_shown_case_hides_it():
    zero_offset = SHIFT_BY_OFFSET.replace("torch.randint(0, 3, (batch_size, dim))",
                                          "torch.randint(0, 3, (batch_size, dim)) * (torch.rand(()) > 0.5)")
    problem = parse_problem(zero_offset)
    seed = next(s for s in range(50) if not problem.at().inputs(s)[1].any())  # a seed whose offset is all zeros
    verdict = verify_problem(problem, candidate_from_class(c.ShiftIgnoresOffset),
                             VerifyOptions(seeds=(seed,), distributions=("as-given",), held_out=False))
    assert [f.name for f in verdict.failures] == ["output depends on input 1"]


def test_dropping_an_operand_is_a_numerical_mismatch_with_indices():
    verdict = verify(RMS_NORM, c.RmsNormDropsWeight)
    failure = verdict.failures[0]
    assert failure.name == "output 0 matches the reference (seed 0, as-given)"
    assert "first at index (0, " in failure.detail and "expected" in failure.detail


def test_a_candidate_whose_parameters_differ_cannot_be_given_the_weights():
    verdict = verify(RMS_NORM, c.RmsNormRenamedWeight)
    assert verdict.failures[0].name == "candidate builds"
    assert "missing ['weight']" in verdict.failures[0].detail and "unexpected ['gamma']" in verdict.failures[0].detail


def test_half_precision_verification_uses_the_half_tolerance():
    verdict = verify(RMS_NORM, c.RmsNorm, dtype=torch.float16, seeds=(0,), held_out=False)
    assert verdict.correct, verdict.feedback()
    assert verdict.max_rel > 1e-5  # half rounding is visible against the float64 oracle


def test_an_all_nan_reference_output_is_skipped_not_passed():
    nan_problem = SCALE_CLAMP.replace("return torch.clamp(x * self.scale, 0.0, 1.0)",
                                      "return torch.full_like(x, float('nan'))")
    verdict = verify(nan_problem, c.NoOpKernel, seeds=(0,), held_out=False, sensitivity=False,
                     require_kernel=False)
    assert not verdict.correct  # nothing was compared, so nothing is proven
    assert verdict.comparisons == 0 and verdict.skipped


def test_the_verdict_serialises():
    data = verify(SCALE_CLAMP, c.NoOpKernel).as_dict()
    assert data["correct"] is False and data["failures"][0]["check"].startswith("output 0 matches")


@pytest.mark.parametrize("source, failing", [
    ("class ModelNew:\n    def forward(self, x):\n        try:\n            return k(x)\n        except Exception:\n"
     "            return torch.relu(x)\n", "no try/except around the computation"),
    ("class ModelNew(Model):\n    pass\n", "does not use the reference class Model"),
    ("def broken(:\n", "candidate source parses"),
])
def test_static_checks_name_the_trick_and_the_line(source, failing):
    failed = [check for check in check_candidate_source(source) if not check.passed]
    assert [check.name for check in failed] == [failing]
    assert "line" in failed[0].detail


def test_static_checks_pass_a_plain_solution():
    source = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return k(x)\n"
    assert all(check.passed for check in check_candidate_source(source))


class FoldedConvBatchNorm(torch.nn.Module):
    """Conv + BatchNorm folded into one convolution: the same function, rounded differently. `error` adds a
    relative error of that size (of the output's scale) to every element."""

    def __init__(self, reference, error=0.0):
        super().__init__()
        self.reference, self.error = reference, error

    def forward(self, x):
        conv, bn = self.reference.conv, self.reference.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
        y = torch.nn.functional.conv2d(x, weight, bias, padding=1)
        return y + self.error * y.pow(2).mean().sqrt()


def test_the_tolerance_is_relative_to_the_outputs_scale_too():
    """Folding passes on large inputs (near-zero outputs from cancellation); an error of 1e-3 of the scale fails."""
    from problem_sources import CONV_BATCHNORM

    problem = parse_problem(CONV_BATCHNORM)
    options = VerifyOptions(require_kernel=False, seeds=(0, 1), held_out=False, sensitivity=False)
    folded = verify_problem(problem, lambda ref, init: FoldedConvBatchNorm(ref), options)
    assert folded.correct, folded.feedback()
    off = verify_problem(problem, lambda ref, init: FoldedConvBatchNorm(ref, error=1e-3), options)
    assert not off.correct and "MISMATCH" in off.failures[0].detail
