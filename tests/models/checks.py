"""The checks every model test makes of optimize(): counts, outputs, state dict, restore."""

import torch

import mpskernels
from mpskernels.optimize import restore, swapped_modules


def first_tensor(output):
    """A model's main output: the tensor itself, or the first field of a tuple or ModelOutput."""
    return output if isinstance(output, torch.Tensor) else output[0]


def check_optimize(model, inputs, expected_counts):
    """optimize() swaps `expected_counts` (kernel -> modules), rolls nothing back, keeps the outputs and the
    state dict, and restore() gives the original model back exactly."""
    reference = first_tensor(model(*inputs)).clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    mpskernels.optimize(model, example_inputs=inputs)
    report = model.mpskernels_report
    assert report.counts() == expected_counts, str(report)
    assert report.rolled_back == [] and report.output_check.startswith("ok"), str(report)
    torch.testing.assert_close(first_tensor(model(*inputs)), reference, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

    restore(model)
    assert swapped_modules(model) == {}
    torch.testing.assert_close(first_tensor(model(*inputs)), reference, rtol=0, atol=0)
