"""Issue 15 items 2-5 and 7-12: copies, saving, dtypes, the calls people make, and swaps that stay true to the
module. Every oracle is PyTorch's own module (or a copy never optimised)."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mpskernels
from mpskernels import launches
from mpskernels.optimize import OptimizeConfig, optimize, restore, swapped_modules


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


def norm_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.RMSNorm(16, eps=1e-5)).eval()


def launched(fn):
    start = launches.count()
    with torch.no_grad():
        out = fn()
    return out, launches.count() - start


# ---- item 2: deepcopy ----


def test_a_deep_copy_is_an_independent_optimised_model(emulator):
    model = optimize(norm_model(), example_inputs=(torch.randn(3, 8),))
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[2].weight.fill_(2.0)
    x = torch.randn(3, 8)
    got, n = launched(lambda: twin(x))
    assert n == 2 and swapped_modules(twin) == swapped_modules(model)
    want = norm_model()
    with torch.no_grad():
        want[2].weight.fill_(2.0)
        torch.testing.assert_close(got, want(x))  # before: the copy computed with the original's weights
        torch.testing.assert_close(model(x), norm_model()(x))
    restore(twin)  # before: TypeError: 'object' object is not callable
    assert swapped_modules(twin) == {} and "forward" not in twin[1].__dict__
    assert swapped_modules(model) == {"1": "silu", "2": "rms_norm"}


# ---- item 3: float64 and meta ----


def test_float64_and_meta_models_are_skipped_or_fall_back(emulator):
    x = torch.randn(3, 8, dtype=torch.float64)
    model = optimize(norm_model().double(), example_inputs=(x,))
    assert swapped_modules(model) == {}
    assert all("float64" in e.detail for e in model.mpskernels_report.skipped)
    unchecked = optimize(norm_model().double())  # no example inputs: the swaps' calls fall back
    with torch.no_grad():
        torch.testing.assert_close(unchecked(x), norm_model().double()(x))  # before: TypeError from mpskernels.silu
    later = optimize(norm_model(), example_inputs=(x.float(),)).double()
    with torch.no_grad():
        torch.testing.assert_close(later(x), norm_model().double()(x))
    meta = optimize(norm_model().to("meta"))
    assert meta(torch.randn(3, 8, device="meta")).is_meta


# ---- item 4: torch.save, TorchScript ----


def test_a_whole_optimised_model_saves_and_loads(emulator):
    model = optimize(norm_model(), example_inputs=(torch.randn(3, 8),))
    buffer = io.BytesIO()
    torch.save(model, buffer)  # before: a pickle error (the swapped forward was a local function)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = torch.randn(3, 8)
    got, n = launched(lambda: loaded(x))
    assert n == 2 and swapped_modules(loaded) == swapped_modules(model)
    with torch.no_grad():
        torch.testing.assert_close(got, norm_model()(x))
    restore(loaded)
    assert swapped_modules(loaded) == {}


def test_scripting_and_tracing_say_to_restore_first(emulator):
    model = optimize(norm_model(), example_inputs=(torch.randn(3, 8),))
    with pytest.raises(RuntimeError, match=r"restore\(model\) first"):
        torch.jit.script(model)
    with pytest.raises(RuntimeError, match=r"restore\(model\) first"):
        torch.jit.trace(model, (torch.randn(3, 8),))
    torch.jit.trace(restore(model), (torch.randn(3, 8),))


# ---- item 5: the calls people make ----


class KeywordModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.SiLU()

    def forward(self, input_ids=None, hidden=None):
        return self.act(hidden)


def test_keyword_only_examples_and_a_single_tensor_are_checked(emulator):
    model = optimize(KeywordModel(), example_kwargs={"hidden": torch.randn(2, 8)})
    (entry,) = model.mpskernels_report.swapped
    assert "checked on example inputs" in entry.detail and model.mpskernels_report.output_check.startswith("ok")
    single = optimize(nn.Sequential(nn.SiLU()), example_inputs=torch.randn(4, 8))  # before: unpacked as 4 arguments
    assert "checked on example inputs" in single.mpskernels_report.swapped[0].detail


def test_misspelled_kernel_names_are_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown kernel name\(s\) 'rmsnorm'.*rms_norm"):
        OptimizeConfig(include={"rmsnorm"})
    with pytest.raises(ValueError, match="unknown kernel name"):
        OptimizeConfig(exclude={"Silu"})
    assert OptimizeConfig(include={"pack:mine", "rope", "attention"}).allows("rope+attention", "x") is None


# ---- item 7: subclasses with their own forward ----


class DoubledSiLU(nn.SiLU):
    def forward(self, x):
        return 2 * super().forward(x)


class CenteredLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x - 1)


def test_subclasses_with_their_own_forward_are_not_swapped_by_type(emulator):
    model = nn.Sequential(DoubledSiLU(), CenteredLayerNorm(8)).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        want = model(x)
        optimize(model)  # without example inputs nothing would catch a wrong swap
        torch.testing.assert_close(model(x), want)
    assert "0" not in swapped_modules(model) and "1" not in swapped_modules(model)


# ---- item 8: PyTorch's defaults ----


def test_implicit_softmax_dim_and_rmsnorm_default_eps_follow_pytorch(emulator):
    for module in (nn.Softmax(dim=None), nn.LogSoftmax(dim=None)):
        for shape in ((5,), (2, 5), (2, 3, 5), (2, 2, 3, 5)):
            x = torch.randn(*shape)
            with pytest.warns(UserWarning, match="Implicit dimension"), torch.no_grad():
                want = module(x)
                got = optimize(copy.deepcopy(module))(x)
            torch.testing.assert_close(got, want)
    norm = nn.RMSNorm(16, eps=None).to(torch.bfloat16)
    x = (torch.randn(4, 16) * 1e-2).to(torch.bfloat16)
    with torch.no_grad():
        want = norm(x)
        got = optimize(norm, example_inputs=(x,))(x)
    assert swapped_modules(norm) == {"": "rms_norm"}
    torch.testing.assert_close(got, want, rtol=1.6e-2, atol=1e-2)  # before: off by up to 1.25


# ---- item 9: state changed after optimize() ----


class HandRMSNorm(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(size) + 0.5)
        self.eps = 1e-6

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GatedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(8, 12), nn.Linear(8, 12), nn.Linear(12, 8)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Wrapped(nn.Module):
    """A LoRA-style wrapper: the base layer plus a low-rank update."""

    def __init__(self, base):
        super().__init__()
        self.base, self.delta = base, nn.Linear(base.in_features, base.out_features, bias=False)

    def forward(self, x):
        return self.base(x) + self.delta(x)


def test_state_changed_after_optimize_is_seen(emulator):
    torch.manual_seed(0)
    x = torch.randn(3, 8)
    model = nn.Sequential(HandRMSNorm(8), nn.GELU(), GatedMLP()).eval()
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {"0": "rms_norm", "1": "gelu", "2": "swiglu_split"}
    model[0].eps, model[1].approximate = 10.0, "tanh"
    model[2].up_proj = Wrapped(model[2].up_proj)
    with torch.no_grad():
        got = model(x)
        want = restore(copy.deepcopy(model))(x)
    torch.testing.assert_close(got, want)


def test_the_conv_batchnorm_fold_sees_data_edits_and_eps(emulator):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)).eval()
    x = torch.randn(1, 2, 6, 6)
    optimize(model, example_inputs=(x,))
    assert set(swapped_modules(model)) == {"0", "1"}
    model[0].weight.data.mul_(3)  # bumps no version counter
    model[1].eps = 0.5
    with torch.no_grad():
        got = model(x)
        want = restore(copy.deepcopy(model))(x)
    torch.testing.assert_close(got, want)


# ---- item 10: a failed whole-model check ----


class InPlaceSiLU(nn.Module):
    def forward(self, x):
        return x.mul_(torch.sigmoid(x))


class ReadsItsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = InPlaceSiLU()

    def forward(self, x):
        y = self.act(x)
        return y + x  # reads x after the activation changed it in place


def test_a_failed_model_output_check_leaves_the_model_as_it_was(emulator):
    model = optimize(ReadsItsInput(), example_inputs=(torch.randn(3, 8),))
    report = model.mpskernels_report
    assert swapped_modules(model) == {}  # before: the swap stayed and the model computed something else
    assert "every swap undone" in report.output_check
    (entry,) = report.rolled_back
    assert entry.module == "act" and "whole model's output" in entry.detail


# ---- item 11: training mode ----


class DropoutSiLU(nn.Module):
    def forward(self, x):
        return F.dropout(F.silu(x), 0.5, self.training)


def test_training_mode_keeps_dropout_and_batchnorm_statistics(emulator):
    act = optimize(DropoutSiLU().eval(), example_inputs=(torch.randn(4, 8),))
    assert swapped_modules(act) == {"": "silu"}
    act.train()
    with torch.no_grad():
        out = act(torch.ones(1000))
    assert (out == 0).sum() > 300  # before: the recognised silu ran, with no dropout
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.SiLU())  # training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize(model, example_inputs=(torch.randn(2, 2, 5, 5) * 3 + 1,))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # before: running_mean/var and num_batches_tracked moved


# ---- item 12: mixed dtypes ----


def test_float32_norm_weights_with_bfloat16_activations_fall_back(emulator):
    torch.manual_seed(0)
    norm = nn.RMSNorm(16, eps=1e-5)  # float32 weight
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        want = norm(x)
        optimize(norm)
        torch.testing.assert_close(norm(x), want)  # before: TypeError from mpskernels.rms_norm
        checked = optimize(nn.RMSNorm(16, eps=1e-5), example_inputs=(x,))
        assert "mixed dtypes" in checked.mpskernels_report.skipped[0].detail


def test_a_routed_attention_block_copies_and_pickles(emulator):
    from test_optimize import SelfAttention  # tests/ is on sys.path (rootdir conftest), as for the other shared tests

    torch.manual_seed(0)
    x = torch.randn(1, 4, 128)
    block = optimize(SelfAttention().eval(), example_inputs=(x,))
    assert swapped_modules(block) == {"": "rope+attention"}
    buffer = io.BytesIO()
    torch.save(block, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(block), torch.load(buffer, weights_only=False)):
        with torch.no_grad():
            other.out.weight.mul_(2)
        got, n = launched(lambda: other(x))
        assert n == 2  # rope and attention, bound to the copy
        with torch.no_grad():
            torch.testing.assert_close(got, restore(copy.deepcopy(other))(x), rtol=1e-4, atol=1e-5)
