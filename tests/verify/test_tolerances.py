"""mpskernels.tolerances.compare: the pass rule, and the figures it reports."""

import torch

from mpskernels.tolerances import compare


def test_max_rel_is_over_expected_values_of_at_least_atol():
    # GELU's far negative tail: expected 1e-20, computed 0. Inside the bound (atol 1e-6); as a ratio it read 1.0,
    # and 1e14 for 1e-20 against 1e-34. The reported relative error is the one at values the ratio means something.
    expected = torch.tensor([1e-20, 2.0, -4.0], dtype=torch.float64)
    actual = torch.tensor([0.0, 2.0 * (1 + 2e-6), -4.0], dtype=torch.float32)
    result = compare(actual, expected, torch.float32)
    assert result.ok and result.mismatches == 0
    assert abs(result.max_rel - 2e-6) < 1e-7
    assert result.max_abs >= 4e-6


def test_max_rel_is_zero_when_every_expected_value_is_below_atol():
    result = compare(torch.zeros(3), torch.full((3,), 1e-9, dtype=torch.float64), torch.float32)
    assert result.ok and result.max_rel == 0.0


def test_a_relative_error_past_the_bound_is_a_mismatch_at_its_index():
    expected = torch.tensor([1.0, 1000.0], dtype=torch.float64)
    actual = torch.tensor([1.0, 1000.1], dtype=torch.float32)
    result = compare(actual, expected, torch.float32)
    assert not result.ok and result.first_bad == (1,) and result.max_rel > 9e-5
    # NaN matches NaN only.
    assert compare(torch.tensor([float("nan")]), torch.tensor([float("nan")], dtype=torch.float64)).ok
    assert not compare(torch.tensor([float("nan")]), torch.tensor([1.0], dtype=torch.float64)).ok
