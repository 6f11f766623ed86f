"""The C++ host path's dispatcher kernels (csrc/host/op_kernels.cpp): torch.ops.mpskernels.<op> serves a repeated
call from a C++ entry (outputs allocated there, one Python call to launch), and every case Python decides still
goes to Python: first calls, autograd recording, a backend switched or the reference, poisoned outputs, a cleared
cache. Results are checked against float64 computations written from each op's definition."""

import pytest
import torch

from mpskernels import cxx_host, registry, runtime
from mpskernels.runtime import use_backend


@pytest.fixture(scope="module")
def host():
    if not cxx_host.installed:  # conftest installs it for the session where it can be built
        pytest.skip("the C++ host path cannot be built here (no compiler)")
    return cxx_host.load()


class CountingBackend:
    """Takes every launch without running a kernel, writing a marker value into each output it is given."""

    name = "counting"
    device_types = ("cpu",)

    def __init__(self):
        self.outputs = []

    def unavailable(self):
        return None

    def launch(self, family, plan, tensors):
        names = list(family.outputs)
        self.outputs.append(names)
        for i, name in enumerate(names):
            tensors[name].fill_(float(i + 1))


@pytest.fixture
def counting(monkeypatch, host):
    backend = CountingBackend()
    monkeypatch.setitem(runtime.BACKENDS, backend.name, backend)
    monkeypatch.setitem(runtime.AUTOMATIC, "cpu", (backend.name,))
    registry.set_launch_cache(True)
    return backend


def served(host, call) -> int:
    """How many calls of `call()` the C++ entries served."""
    before = host.repeated_calls()
    call()
    return host.repeated_calls() - before


def silu64(x):
    x = x.double()
    return x / (1 + torch.exp(-x))


def add_rms_norm64(x, residual, weight, eps):
    h = x.double() + residual.double()
    return h / torch.sqrt((h * h).mean(-1, keepdim=True) + eps) * weight.double(), h


def rope64(q, k, cos, sin):
    """Rotate-half rotary embedding at positions 0..seq-1 (cos, sin: [positions, head_dim])."""
    c, s = cos.double()[: q.shape[2]], sin.double()[: q.shape[2]]

    def rotate(x):
        x = x.double()
        half = x.shape[-1] // 2
        return x * c + torch.cat((-x[..., half:], x[..., :half]), -1) * s

    return rotate(q), rotate(k)


def test_a_repeated_call_is_served_in_cxx_with_its_outputs_in_order(counting, host):
    x, residual, w = torch.randn(3, 64), torch.randn(3, 64), torch.rand(64)
    call = lambda: torch.ops.mpskernels.add_rms_norm(x, residual, w, 1e-6)  # noqa: E731
    assert served(host, call) == 0  # the first call decides (Python)
    assert served(host, call) == 1
    out, residual_out = torch.ops.mpskernels.add_rms_norm(x, residual, w, 1e-6)
    # the backend wrote 1 into the first output it was handed and 2 into the second: they come back in that order
    assert (out == 1).all() and (residual_out == 2).all() and out.shape == x.shape and out.dtype == x.dtype
    assert counting.outputs[-1] == ["out", "residual_out"]


def test_what_the_key_holds_decides_afresh(counting, host):
    x = torch.randn(4, 32)
    served(host, lambda: torch.ops.mpskernels.rms_norm(x, None, 1e-6))
    assert served(host, lambda: torch.ops.mpskernels.rms_norm(x, None, 1e-6)) == 1
    assert served(host, lambda: torch.ops.mpskernels.rms_norm(x, None, 1e-5)) == 0  # another eps
    assert served(host, lambda: torch.ops.mpskernels.rms_norm(x.half(), None, 1e-6)) == 0  # another dtype
    assert served(host, lambda: torch.ops.mpskernels.rms_norm(x.t().contiguous().t(), None, 1e-6)) == 0  # strides
    with pytest.raises(ValueError, match=r"mpskernels\.rms_norm: .*eps"):
        torch.ops.mpskernels.rms_norm(x, None, float("nan"))  # checked on its first call, whatever came before


@pytest.mark.parametrize("clear", ["set_launch_cache", "plans.clear", "plans replaced"])
def test_clearing_the_launch_cache_forgets_the_cxx_entries(counting, host, clear, monkeypatch):
    x = torch.randn(2, 16)
    call = lambda: torch.ops.mpskernels.silu(x)  # noqa: E731
    call()
    assert served(host, call) == 1
    if clear == "set_launch_cache":
        registry.set_launch_cache(True)
    elif clear == "plans.clear":
        registry.RUNNERS["silu"].plans.clear()
    else:
        monkeypatch.setattr(registry.RUNNERS["silu"], "plans", {})
    assert served(host, call) == 0
    assert served(host, call) == 1


def test_no_entries_while_the_launch_cache_is_off(counting, host):
    x = torch.randn(2, 16)
    registry.set_launch_cache(False)
    try:
        assert served(host, lambda: [torch.ops.mpskernels.silu(x) for _ in range(3)]) == 0
    finally:
        registry.set_launch_cache(True)


def test_a_backend_switched_after_the_entry_was_made_is_honoured(counting, host):
    x = torch.randn(2, 16, dtype=torch.float64).float()
    torch.ops.mpskernels.silu(x)
    with use_backend("reference"):  # the entry's launch asks for the backend on every call
        assert served(host, lambda: torch.testing.assert_close(torch.ops.mpskernels.silu(x).double(), silu64(x),
                                                               rtol=1e-6, atol=1e-6)) == 1
    assert (torch.ops.mpskernels.silu(x) == 1).all()  # the counting backend again
    with pytest.raises(runtime.BackendError, match=r"mpskernels\.silu: the metal backend"):
        with use_backend("metal"):  # forced and unavailable here: raises, naming the op
            torch.ops.mpskernels.silu(x)


def test_poisoned_outputs_take_the_long_way(counting, host, monkeypatch):
    x = torch.randn(2, 16)
    torch.ops.mpskernels.silu(x)
    monkeypatch.setattr(registry, "poison_outputs", True)
    launched = len(counting.outputs)
    assert (torch.ops.mpskernels.silu(x) == 1).all() and len(counting.outputs) == launched + 1


def test_emulated_kernels_through_the_cxx_path_match_float64():
    if not cxx_host.installed:
        pytest.skip("the C++ host path cannot be built here (no compiler)")
    x, residual, w = torch.randn(3, 40), torch.randn(3, 40), torch.rand(40) + 0.5
    q, k = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 3, 16)
    angles = torch.arange(3.0)[:, None] * torch.linspace(0.1, 1.0, 8)[None]
    cos, sin = torch.cat((angles.cos(),) * 2, -1), torch.cat((angles.sin(),) * 2, -1)
    host = cxx_host.load()
    with use_backend("emulator"):
        for _ in range(2):  # the second call of each is served from its entry
            before = host.repeated_calls()
            silu = torch.ops.mpskernels.silu(x)
            out, h = torch.ops.mpskernels.add_rms_norm(x, residual, w, 1e-6)
            q_out, k_out = torch.ops.mpskernels.rope(q, k, cos, sin, None, 0, False)
        assert host.repeated_calls() - before == 3
    tolerance = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(silu.double(), silu64(x), **tolerance)
    out64, h64 = add_rms_norm64(x, residual, w, 1e-6)
    torch.testing.assert_close(out.double(), out64, **tolerance)
    torch.testing.assert_close(h.double(), h64, **tolerance)
    q64, k64 = rope64(q, k, cos, sin)
    torch.testing.assert_close(q_out.double(), q64, **tolerance)
    torch.testing.assert_close(k_out.double(), k64, **tolerance)


def test_autograd_records_through_the_python_kernel_and_skips_it_otherwise(counting, host):
    x = torch.randn(3, 8, dtype=torch.float64).float().requires_grad_()
    with use_backend("reference"):
        y = torch.ops.mpskernels.silu(x)
        y.sum().backward()
    x64 = x.detach().double()
    sigmoid = 1 / (1 + torch.exp(-x64))
    torch.testing.assert_close(x.grad.double(), sigmoid * (1 + x64 * (1 - sigmoid)), rtol=1e-5, atol=1e-6)
    assert y.grad_fn is not None
    with torch.no_grad():  # nothing records: below autograd in C++, and then the repeated path
        torch.ops.mpskernels.silu(x)
        assert served(host, lambda: torch.ops.mpskernels.silu(x)) == 1
    with torch.inference_mode():  # no autograd keys at all: the CPU kernel directly
        z = torch.randn(3, 8)
        torch.ops.mpskernels.silu(z)
        assert served(host, lambda: torch.ops.mpskernels.silu(z)) == 1


def test_an_op_without_outputs_of_its_own_goes_the_long_way(counting, host):
    k_cache, v_cache = torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4)
    k, v = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
    with use_backend("reference"):
        calls = lambda: [torch.ops.mpskernels.kv_cache_append(k_cache, v_cache, k, v, i) for i in range(3)]  # noqa
        assert served(host, calls) == 0  # it writes its inputs: never a simple launch
    torch.testing.assert_close(k_cache[:, :, :3], k.expand(-1, -1, 3, -1))
    torch.testing.assert_close(v_cache[:, :, :3], v.expand(-1, -1, 3, -1))
    assert (k_cache[:, :, 3:] == 0).all()


def test_threads_calling_at_once_share_the_entries_safely(counting, host):
    import threading

    x, residual, w = torch.randn(2, 32), torch.randn(2, 32), torch.rand(32)
    results, errors = [], []

    def work():
        try:
            for _ in range(200):
                out, h = torch.ops.mpskernels.add_rms_norm(x, residual, w, 1e-6)
                results.append(bool((out == 1).all() and (h == 2).all()))
                registry.RUNNERS["silu"].plans.clear()  # another thread's entries vanish mid-call
                results.append(bool((torch.ops.mpskernels.silu(x) == 1).all()))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 1600 and all(results)
