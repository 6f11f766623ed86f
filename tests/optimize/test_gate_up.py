"""Issue 18: a gated MLP's gate and up projections as one matmul (optimize/gate_up.py), with the parameters kept
(identity, values, state-dict keys), and every state the fused path cannot serve sent back to the two layers."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import mpskernels
from mpskernels.optimize import OptimizeConfig, gate_up, optimize, restore, swapped_modules

MATMULS = {"mm", "addmm", "bmm", "matmul", "linear"}


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


class MLP(nn.Module):
    """LLaMA's MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, d=16, h=24, bias=False):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, h, bias=bias), nn.Linear(d, h, bias=bias)
        self.down_proj, self.act_fn = nn.Linear(h, d, bias=bias), nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def float64_mlp(m, x):
    """The MLP's documented computation in float64, from the weights as they are now."""
    def linear(layer, v):
        out = v.double() @ layer.weight.double().T
        return out if layer.bias is None else out + layer.bias.double()
    g = linear(m.gate_proj, x)
    return linear(m.down_proj, g / (1 + torch.exp(-g)) * linear(m.up_proj, x))


class CountMatmuls(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.matmuls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.matmuls += func.overloadpacket.__name__ in MATMULS
        return func(*args, **(kwargs or {}))


def fused(m) -> bool:
    w1, w2 = m.gate_proj.weight, m.up_proj.weight
    return w1.untyped_storage().data_ptr() == w2.untyped_storage().data_ptr() and \
        w2.storage_offset() == w1.storage_offset() + w1.numel()


def optimised(bias=False, seed=0):
    torch.manual_seed(seed)
    model = MLP(bias=bias).eval()
    optimize(model, example_inputs=(torch.randn(3, 16),))
    return model


@pytest.mark.parametrize("bias", [False, True])
def test_one_matmul_for_gate_and_up_with_the_same_parameters(emulator, bias):
    torch.manual_seed(0)
    model = MLP(bias=bias).eval()
    before = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    optimize(model, example_inputs=(torch.randn(3, 16),))
    assert swapped_modules(model) == {"": "swiglu_split"}
    assert "one matmul" in model.mpskernels_report.entries[0].detail
    assert fused(model)
    for name, p in model.named_parameters():  # the very parameters, with their values and requires_grad
        assert p is before[name][0] and p.requires_grad and torch.equal(p, before[name][1])
    assert list(model.state_dict()) == list(before)
    x = torch.randn(2, 5, 16)
    with torch.no_grad(), CountMatmuls() as counted:
        got = model(x)
    assert counted.matmuls == 2  # gate and up as one, then down
    torch.testing.assert_close(got.double(), float64_mlp(model, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, restore(copy.deepcopy(model))(x))


def test_excluding_the_split_kernel_leaves_two_matmuls(emulator):
    torch.manual_seed(0)
    model = MLP().eval()
    optimize(model, OptimizeConfig(exclude=["swiglu_split"]), example_inputs=(torch.randn(3, 16),))
    assert swapped_modules(model) == {"": "swiglu"} and not fused(model)
    x = torch.randn(3, 16)
    with torch.no_grad(), CountMatmuls() as counted:
        got = model(x)
    assert counted.matmuls == 3
    torch.testing.assert_close(got.double(), float64_mlp(model, x), atol=1e-5, rtol=1e-5)


def test_autograd_gets_the_two_layers_and_their_gradients(emulator):
    model = optimised()
    reference = restore(copy.deepcopy(model))
    x = torch.randn(4, 16)
    with CountMatmuls() as counted:
        model(x).square().sum().backward()
    assert counted.matmuls >= 3  # not the fused matmul: autograd records
    reference(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_state_dict_saves_and_loads_through_torch_and_safetensors(emulator, tmp_path):
    model = optimised()
    x = torch.randn(3, 16)
    with torch.no_grad():
        want = model(x)
    state = model.state_dict()
    save_file(state, tmp_path / "mlp.safetensors")  # refuses tensors that share memory unless they are disjoint
    buffer = io.BytesIO()
    torch.save(state, buffer)
    for loaded in (load_file(tmp_path / "mlp.safetensors"), torch.load(io.BytesIO(buffer.getvalue()))):
        fresh = MLP().eval()
        fresh.load_state_dict(loaded)
        with torch.no_grad():
            torch.testing.assert_close(fresh(x), want)


def test_weights_loaded_or_edited_in_place_are_read_by_the_fused_matmul(emulator):
    model = optimised()
    other = MLP().eval()
    model.load_state_dict(other.state_dict())  # copies into the fused halves
    assert fused(model)
    x = torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x))
        model.up_proj.weight.mul_(-2)
        torch.testing.assert_close(model(x).double(), float64_mlp(model, x), atol=1e-5, rtol=1e-5)


def test_a_replaced_weight_is_used_and_not_fused_again(emulator):
    model = optimised()
    model.up_proj.weight = nn.Parameter(torch.randn(24, 16))  # owns its storage; gate is still a fused half
    x = torch.randn(3, 16)
    with torch.no_grad(), CountMatmuls() as counted:
        got = model(x)
    assert counted.matmuls == 3 and not fused(model)
    torch.testing.assert_close(got.double(), float64_mlp(model, x), atol=1e-5, rtol=1e-5)


def test_copies_and_moved_models_fuse_again_at_their_first_call(emulator):
    model = optimised()
    x = torch.randn(3, 16)
    with torch.no_grad():
        want = model(x)
    twin = copy.deepcopy(model)  # parameters with storages of their own
    assert not fused(twin)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    doubled = copy.deepcopy(model).double().float()  # a dtype round trip replaces every parameter's data
    for m in (twin, loaded, doubled):
        with torch.inference_mode():  # fused here, the parameters must stay usable by autograd afterwards
            torch.testing.assert_close(m(x), want)
        assert fused(m)
        m(x).sum().backward()
        assert m.up_proj.weight.grad is not None and not m.up_proj.weight.is_inference()


def test_forward_hooks_on_a_projection_still_run(emulator):
    model = optimised()
    seen = []
    handle = model.gate_proj.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    x = torch.randn(3, 16)
    with torch.no_grad():
        got = model(x)
    assert seen == [torch.Size([3, 24])]
    torch.testing.assert_close(got.double(), float64_mlp(model, x), atol=1e-5, rtol=1e-5)
    handle.remove()


def test_a_forward_set_on_a_projection_instance_still_runs(emulator):
    """accelerate's offloading hooks and some adapters wrap a layer's forward on the instance."""
    model = optimised()
    original = model.up_proj.forward
    model.up_proj.forward = lambda x: 2 * original(x)
    x = torch.randn(3, 16)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, model.down_proj(F.silu(model.gate_proj(x)) * 2 * original(x)))


def test_a_projection_shared_by_two_mlps_is_fused_once(emulator):
    torch.manual_seed(0)
    first, second = MLP().eval(), MLP().eval()
    second.gate_proj = first.gate_proj  # tied: one Linear in both
    model = nn.Sequential(first, second)
    x = torch.randn(3, 16)
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {"0": "swiglu_split", "1": "swiglu_split"}
    with torch.no_grad():
        model(x)
        pointers = [p.data_ptr() for p in model.parameters()]
        got = model(x)
    assert [p.data_ptr() for p in model.parameters()] == pointers  # no fusing back and forth at every call
    assert fused(first) != fused(second)
    torch.testing.assert_close(got.double(), float64_mlp(second, float64_mlp(first, x)).double(), atol=1e-5,
                               rtol=1e-5)


def test_fused_the_other_way_round_is_fused_again_in_order():
    torch.manual_seed(0)
    m = MLP()
    x = torch.randn(3, 16)
    want = torch.cat((F.linear(x, m.gate_proj.weight), F.linear(x, m.up_proj.weight)), -1).detach()
    with torch.no_grad():
        gate_up.project(x, m.up_proj, m.gate_proj)
        assert not fused(m)
        torch.testing.assert_close(gate_up.project(x, m.gate_proj, m.up_proj), want)
    assert fused(m)


@pytest.mark.parametrize("change", ["one bias", "subclass", "same layer", "dtype"])
def test_layers_one_matmul_cannot_compute_are_not_fused(change):
    m = MLP()
    if change == "one bias":
        m.up_proj = nn.Linear(16, 24)
    elif change == "subclass":
        m.up_proj = type("Scaled", (nn.Linear,), {"forward": lambda self, x: 2 * super(type(self), self).forward(x)})(
            16, 24)
    elif change == "same layer":
        m.up_proj = m.gate_proj
    else:
        m.up_proj = m.up_proj.double()
    assert not gate_up.fusable(m.gate_proj, m.up_proj)
    with torch.no_grad():
        assert gate_up.project(torch.randn(2, 16), m.gate_proj, m.up_proj) is None
