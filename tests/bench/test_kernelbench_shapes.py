"""Problem files of the shapes an unmodified KernelBench checkout has (issue 17), each written here in
KernelBench format: the harness must load, scale, run and report every one of them honestly."""

from __future__ import annotations

import pytest

from mpskernels.bench import BenchOptions, environment, optimize_candidate, run_bench
from mpskernels.bench.results import ERROR, OK
from mpskernels.cli import main
from mpskernels.problem import ProblemError, load_problem, load_problems

QUICK = BenchOptions(seeds=(0,), distributions=("as-given", "normal", "large"), held_out=False)

RELU = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


batch_size = 16
dim = 64


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

# KernelBench's Mamba2 problems import einops, which a plain PyTorch installation lacks.
NEEDS_A_MISSING_MODULE = RELU.replace("import torch.nn as nn", "import torch.nn as nn\nimport no_such_module_xyz")


def test_a_file_that_fails_to_import_does_not_abort_its_folder(tmp_path):
    level = tmp_path / "level3"
    level.mkdir()
    (level / "1_relu.py").write_text(RELU)
    (level / "2_needs_einops.py").write_text(NEEDS_A_MISSING_MODULE)
    (level / "3_relu_again.py").write_text(RELU)
    problems = load_problems([tmp_path])
    assert [p.name for p in problems] == ["1_relu", "2_needs_einops", "3_relu_again"]
    report = run_bench(problems, [optimize_candidate()], environment("cpu", 4096), QUICK)
    statuses = [(r.name, r.status) for r in report.problems]
    assert statuses == [("1_relu", OK), ("2_needs_einops", ERROR), ("3_relu_again", OK)]
    broken = report.problems[1]
    assert "failed to load" in broken.reason and "No module named 'no_such_module_xyz'" in broken.reason
    assert broken.level == 3 and broken.candidates == []


def test_a_named_file_that_fails_to_import_is_reported_and_the_run_goes_on(tmp_path, capsys):
    bad = tmp_path / "2_needs_einops.py"
    bad.write_text(NEEDS_A_MISSING_MODULE)
    good = tmp_path / "1_relu.py"
    good.write_text(RELU)
    rc = main(["bench", str(good), str(bad), "--quick", "-q", "--no-plot", "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    import json
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(p["name"], p["status"]) for p in data["problems"]] == [("1_relu", OK), ("2_needs_einops", ERROR)]


@pytest.mark.parametrize("name, text, why", [
    ("README.md", "# KernelBench\n\nA benchmark of `nn.Module`s.\n", "it is not Python"),
    ("helper.py", "def f():\n    return 1\n", "it defines no Model, get_inputs, get_init_inputs"),
])
def test_a_file_that_is_not_a_problem_says_so(tmp_path, capsys, name, text, why):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ProblemError) as e:
        load_problem(path)
    assert f"{path} is not a KernelBench problem" in str(e.value) and why in str(e.value)
    assert "not valid Python" not in str(e.value)
    rc = main(["bench", str(path), "-q", "--no-plot", "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert rc == 2 and "is not a KernelBench problem" in err


# KernelBench level 1 writes matmul sizes as constant arithmetic, and image sizes by tuple unpacking.
MATMUL = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


M = 1024 * 2
K = 4096 * 2
N = 2048 * 2


def get_inputs():
    return [torch.rand(M, K), torch.rand(K, N)]


def get_init_inputs():
    return []
'''

CONV = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x):
        return torch.relu(self.conv(x))


batch_size = 128
in_channels, out_channels = 3, 16
height, width = 256, 256
kernel_size = 3


def get_inputs():
    return [torch.rand(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
'''


def test_constant_arithmetic_and_tuple_unpacking_are_size_knobs(tmp_path):
    from mpskernels.problem import parse_problem, scaled_sizes

    matmul = parse_problem(MATMUL, name="matmul")
    assert matmul.constants == {"M": 2048, "K": 8192, "N": 4096}
    sizes = scaled_sizes(matmul, 1 << 16)
    assert sizes and sum(matmul.at(sizes).meta_sizes()) <= 1 << 16
    conv = parse_problem(CONV, name="conv")
    assert conv.constants == {"batch_size": 128, "in_channels": 3, "out_channels": 16, "height": 256, "width": 256,
                              "kernel_size": 3}
    instance = conv.at({"height": 32, "width": 16})
    (x,) = instance.inputs(0)
    assert x.shape == (128, 3, 32, 16)
    path = tmp_path / "level1"
    path.mkdir()
    (path / "1_matmul.py").write_text(MATMUL)
    (path / "2_conv.py").write_text(CONV)
    report = run_bench(load_problems([path]), [optimize_candidate()], environment("cpu", 1 << 16), QUICK)
    assert [r.status for r in report.problems] == [OK, OK], [r.reason for r in report.problems]
    assert report.problems[1].sizes["height"] == report.problems[1].sizes["width"] < 256


# level2/94's shape: 8192 channels in 256 groups (32 channels a group). Halving must not end at one channel a group.
GEMM_GROUPNORM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features, out_features, num_groups):
        super().__init__()
        self.gemm = nn.Linear(in_features, out_features)
        self.groupnorm = nn.GroupNorm(num_groups=num_groups, num_channels=out_features)

    def forward(self, x):
        return self.groupnorm(self.gemm(x))


batch_size = 1024
in_features = 8192
out_features = 8192
num_groups = 256


def get_inputs():
    return [torch.rand(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, num_groups]
'''

# level2/19's shape: 64 channels in 8 groups, the group count below the sizes the rule halves on its own.
CONV_GROUPNORM = CONV.replace(
    "self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)",
    "self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)\n"
    "        self.norm = nn.GroupNorm(num_groups, out_channels)").replace(
    "return torch.relu(self.conv(x))", "return self.norm(self.conv(x))").replace(
    "in_channels, out_channels = 3, 16", "in_channels, out_channels = 64, 64\nnum_groups = 8").replace(
    "return [in_channels, out_channels, kernel_size]", "return [in_channels, out_channels, kernel_size]")

# minGPT's attention: the head width is n_embd // n_head; ViT's patches: image_size // patch_size.
HEADS_AND_PATCHES = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n_embd, n_head, image_size, patch_size):
        super().__init__()
        assert n_embd % n_head == 0 and image_size % patch_size == 0
        self.n_head = n_head
        self.patch_size = patch_size
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x, img):
        B, T, C = x.shape
        q = self.proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = torch.softmax(q @ q.transpose(-2, -1), dim=-1) @ q
        p = self.patch_size
        patches = img.unfold(2, p, p).unfold(3, p, p)
        return att.sum() + patches.sum()


batch_size = 64
seq_len = 512
n_embd = 768
n_head = 8
image_size = 224
patch_size = 16


def get_inputs():
    return [torch.rand(batch_size, seq_len, n_embd), torch.rand(batch_size, 3, image_size, image_size)]


def get_init_inputs():
    return [n_embd, n_head, image_size, patch_size]
'''


def test_scaling_keeps_the_ratios_the_file_states():
    from mpskernels.problem import parse_problem, related_sizes, scaled_sizes

    gemm = parse_problem(GEMM_GROUPNORM, name="94_gemm_groupnorm")
    assert related_sizes(gemm) == {("num_groups", "out_features")}
    sized = gemm.at(scaled_sizes(gemm, 1 << 16)).sizes
    assert sized["out_features"] // sized["num_groups"] == 32 and sized["out_features"] % sized["num_groups"] == 0
    assert sized["in_features"] == sized["out_features"]  # equal in the file, equal as run

    conv = parse_problem(CONV_GROUPNORM, name="19_conv_groupnorm")
    sized = conv.at(scaled_sizes(conv, 1 << 16)).sizes
    assert sized["out_channels"] // sized["num_groups"] == 8 and sized["out_channels"] % sized["num_groups"] == 0

    attn = parse_problem(HEADS_AND_PATCHES, name="attention_and_patches")
    assert related_sizes(attn) == {("n_head", "n_embd"), ("patch_size", "image_size")}
    instance = attn.at(scaled_sizes(attn, 1 << 16))
    sized = instance.sizes
    assert sized["n_embd"] // sized["n_head"] == 96 and sized["n_embd"] % sized["n_head"] == 0
    assert sized["image_size"] // sized["patch_size"] == 14 and sized["image_size"] % sized["patch_size"] == 0
    assert sum(instance.meta_sizes()) <= 1 << 16
    instance.reference()(*instance.inputs(0))  # and the reference runs there


# level1/80's shape: a dilated kernel (41 wide) that the halved image becomes too small for.
DILATED_CONV = CONV.replace("nn.Conv2d(in_channels, out_channels, kernel_size)",
                            "nn.Conv2d(in_channels, out_channels, kernel_size, dilation=20)").replace(
    "batch_size = 128", "batch_size = 4").replace("in_channels, out_channels = 3, 16", "in_channels, out_channels = 1, 2")

# A model that only runs at the file's width, which is too large for the budget and the back-off.
ONLY_AT_FILE_WIDTH = RELU.replace("return torch.relu(x)",
                                  'assert x.shape[-1] == 65536, "needs the full width"\n        return torch.relu(x)'
                                  ).replace("dim = 64", "dim = 65536")


def test_where_the_reference_fails_at_scaled_sizes_the_harness_backs_off_or_says_it_is_its_limit():
    from mpskernels.problem import parse_problem, scaled_sizes

    dilated = parse_problem(DILATED_CONV, name="80_dilated_conv")
    assert dilated.at(scaled_sizes(dilated, 1024)).sizes["height"] < 41  # the rule alone picks sizes too small
    wide = parse_problem(ONLY_AT_FILE_WIDTH, name="only_at_file_width")
    report = run_bench([dilated, wide], [optimize_candidate()], environment("cpu", 1024), QUICK)
    ran, limited = report.problems
    assert ran.status == OK, ran.reason
    assert ran.sizes["height"] == ran.sizes["width"] >= 41 and ran.candidates[0].correct
    assert "the reference fails at sizes" in ran.size_note and "nearest larger sizes" in ran.size_note
    assert limited.status != ERROR and limited.reason.startswith("harness limitation:"), limited.reason
    assert "the file's sizes are too large to try" in limited.reason
