"""KernelBench-format problem files: loading, size knobs, the scaling rule and held-out sizes."""

from __future__ import annotations

import pytest
import torch

from mpskernels.problem import (ProblemError, held_out_sizes, load_problem, load_problems, parse_problem,
                                scaled_sizes)

LINEAR = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.lin = nn.Linear(dim, hidden)

    def forward(self, x):
        return torch.relu(self.lin(x))


batch_size = 128
dim = 4096
hidden = dim * 2  # derived: follows dim
kernel_size = 3
_private = 64


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim]
'''

# KernelBench writes some shapes as tuples and draws some inputs from torch.distributions.
TUPLE_SHAPE = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, predictions, targets):
        return torch.mean((predictions - targets) ** 2)


batch_size = 32768
input_shape = (32768,)
dim = 1


def get_inputs():
    scale = torch.rand(())
    return [torch.distributions.Pareto(scale, 2.0).sample((batch_size, *input_shape)),
            torch.randn(batch_size, *input_shape)]


def get_init_inputs():
    return []
'''


def test_knobs_are_integer_literals_and_derived_sizes_follow_them():
    problem = parse_problem(LINEAR, name="linear")
    assert problem.constants == {"batch_size": 128, "dim": 4096, "kernel_size": 3}
    instance = problem.at({"dim": 64})
    assert instance.namespace["hidden"] == 128
    assert instance.reference().lin.weight.shape == (128, 64)
    assert instance.inputs(0)[0].shape == (128, 64)
    assert torch.equal(instance.inputs(3)[0], instance.inputs(3)[0])  # seeded


def test_scaling_halves_the_largest_knob_until_the_problem_fits():
    problem = parse_problem(LINEAR, name="linear")
    sizes = scaled_sizes(problem, 100_000)
    assert sizes == {"dim": 128}
    inputs, params = problem.at(sizes).meta_sizes()
    assert inputs + params <= 100_000 and problem.at(sizes).sizes["kernel_size"] == 3  # small knobs stay
    assert scaled_sizes(problem, 10**12) == {}


def test_scaling_reaches_inside_tuple_knobs_and_counts_distribution_samples():
    problem = parse_problem(TUPLE_SHAPE, name="mse")
    assert problem.constants == {"batch_size": 32768, "input_shape": (32768,), "dim": 1}
    sizes = scaled_sizes(problem, 1 << 16)
    assert sizes == {"batch_size": 128, "input_shape": (128,)}  # equal in the file: halved together
    predictions, targets = problem.at(sizes).inputs(0)
    assert predictions.shape == targets.shape == (128, 128) and (predictions > 0).all()


# KernelBench level 3's MLPs give their widths as lists (1_MLP, 2_ShallowWideMLP; 3_DeepNarrowMLP as `[1024] * 16`):
# widths that were no knobs left them at 16M-1G elements, beyond every budget.
LIST_WIDTHS = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, input_size, layer_sizes, deep_sizes, output_size):
        super().__init__()
        assert isinstance(layer_sizes, list) and isinstance(deep_sizes, list)  # as the file made them
        widths = [input_size] + layer_sizes + deep_sizes + [output_size]
        self.layers = nn.Sequential(*(nn.Linear(a, b) for a, b in zip(widths, widths[1:])))

    def forward(self, x):
        return self.layers(x)


batch_size = 128
input_size = 16384
layer_sizes = [16384, 8192]
deep_sizes = [1024] * 4
output_size = 8192


def get_inputs():
    return [torch.rand(batch_size, input_size)]


def get_init_inputs():
    return [input_size, layer_sizes, deep_sizes, output_size]
'''


def test_list_widths_are_knobs_and_stay_lists():
    problem = parse_problem(LIST_WIDTHS, name="mlp")
    assert problem.constants["layer_sizes"] == (16384, 8192) and problem.constants["deep_sizes"] == (1024,) * 4
    sizes = scaled_sizes(problem, 1 << 16)
    inputs, params = problem.at(sizes).meta_sizes()
    assert inputs + params <= 1 << 16
    instance = problem.at(sizes)
    model = instance.reference()
    widths = [layer.in_features for layer in model.layers] + [model.layers[-1].out_features]
    assert widths[1:3] == list(instance.sizes["layer_sizes"]) and len(widths) == 2 + 2 + 4
    assert model(*instance.inputs(0)).shape == (instance.sizes["batch_size"], widths[-1])


def test_a_problem_that_cannot_fit_says_so():
    problem = parse_problem(LINEAR.replace("kernel_size = 3", "kernel_size = 3\nbig = 10"), name="linear")
    with pytest.raises(ProblemError, match="needs .* elements at its smallest sizes, more than the budget of 10"):
        scaled_sizes(problem, 10)


def test_halving_stops_where_the_model_can_no_longer_be_built():
    # level3/25_ShuffleNetUnit: mid channels = out / 4 must stay divisible by the groups; here dim % 512 stands
    # for such a relation: the halving path's 256 breaks the model, so 512 is the smallest size
    strict = LINEAR.replace("super().__init__()", "super().__init__()\n        assert dim % 512 == 0")
    problem = parse_problem(strict, name="strict")
    fits = scaled_sizes(problem, 10**7)
    assert fits == {} or fits["dim"] % 512 == 0
    smallest = sum(problem.at({"dim": 512}).meta_sizes())
    assert scaled_sizes(problem, smallest)["dim"] == 512
    with pytest.raises(ProblemError, match="halving on to .* breaks the model: AssertionError"):
        scaled_sizes(problem, smallest - 1)


def test_held_out_sizes_are_odd_around_the_simd_width_and_batch_one():
    problem = parse_problem(TUPLE_SHAPE, name="mse")
    variants = held_out_sizes(problem, {"batch_size": 128, "input_shape": (256,)})
    assert variants == [
        {"batch_size": 127, "input_shape": (255,), "dim": 1},
        {"batch_size": 129, "input_shape": (257,), "dim": 1},
        {"batch_size": 1, "input_shape": (256,), "dim": 1},
    ]


def test_sizes_the_file_sets_equal_stay_equal():
    """KernelBench's hinge loss broadcasts (batch,) targets against (batch, n) predictions: only n == batch works."""
    hinge = TUPLE_SHAPE.replace("torch.randn(batch_size, *input_shape)", "torch.randn(batch_size)").replace(
        "torch.mean((predictions - targets) ** 2)", "torch.mean(torch.clamp(1 - predictions * targets, min=0))")
    problem = parse_problem(hinge, name="hinge")
    instance = problem.at(scaled_sizes(problem, 1 << 14))
    assert instance.sizes["batch_size"] == instance.sizes["input_shape"][0] == 64
    instance.reference()(*instance.inputs(0))  # runs: the broadcast still lines up


@pytest.mark.parametrize("source, message", [
    ("def get_inputs(): return []\n", "is not a KernelBench problem: it defines no Model, get_init_inputs"),
    ("class Model(:\n", "is not a KernelBench problem .*: it is not Python"),
    ("import torch\nclass Model(torch.nn.Module): pass\ndef get_inputs(): return []\n"
     "def get_init_inputs(): return []\nraise RuntimeError('boom')\n", "failed to load: RuntimeError: boom"),
])
def test_bad_problem_files_are_named_with_the_reason(source, message):
    with pytest.raises(ProblemError, match=message):
        parse_problem(source, name="bad")


def test_unknown_knobs_are_refused():
    with pytest.raises(ProblemError, match="has no size constant\\(s\\) width; it has batch_size, dim, kernel_size"):
        parse_problem(LINEAR, name="linear").at({"width": 3})


def test_folders_are_searched_and_levels_read_from_their_names(tmp_path):
    (tmp_path / "level2").mkdir()
    (tmp_path / "level2" / "19_linear.py").write_text(LINEAR)
    (tmp_path / "level2" / "helpers.py").write_text("X = 1\n")  # not a problem: passed over
    (tmp_path / "__init__.py").write_text("")
    problems = load_problems([tmp_path])
    assert [(p.name, p.level) for p in problems] == [("19_linear", 2)]
    assert load_problem(tmp_path / "level2" / "19_linear.py").path.name == "19_linear.py"
    with pytest.raises(ProblemError, match="no problem file or folder at"):
        load_problems([tmp_path / "missing"])
