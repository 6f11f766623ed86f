"""The per-op launch cache (registry.OpRunner): a repeated call reuses its decisions, anything the key holds that
changes decides afresh, bad input raises whatever was cached before, and results do not depend on the cache.
Both call routes: mpskernels.ops (direct in eager mode) and torch.ops.mpskernels (the dispatcher)."""

import dataclasses
import os
import shutil
import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mpskernels import cxx_host, ops, registry, runtime
from mpskernels.kernels import rope as rope_kernels
from mpskernels.runtime import use_backend
from op_cases import strided_copy

ROUTES = {"ops": lambda name: getattr(ops, name), "torch.ops": lambda name: getattr(torch.ops.mpskernels, name)}


class RecordingBackend:
    """Takes every launch and does nothing with it: the host path up to the backend, without a kernel."""

    name = "recording"
    device_types = ("cpu",)

    def __init__(self):
        self.launches = []

    def unavailable(self):
        return None

    def launch(self, family, plan, tensors):
        self.launches.append((family.name, plan.kernel))


def cxx_key():
    module = cxx_host.load()  # builds at most once per source (torch's extension cache); quick once built
    if module is None:
        pytest.skip("the C++ host path cannot be built here (no compiler)")
    return module.key


@pytest.fixture(params=["python-key", "cxx-key"])
def backend(monkeypatch, request):
    """CPU tensors launch on a recording backend (chosen automatically, as the op's real backends are); every op
    keys its calls with the Python key or the C++ one."""
    for runner in registry.RUNNERS.values():
        key = registry.key_function(runner.family.schema) if request.param == "python-key" else cxx_key()
        monkeypatch.setattr(runner, "key", key)
        monkeypatch.setattr(runner, "plans", {})
    recording = RecordingBackend()
    monkeypatch.setitem(runtime.BACKENDS, recording.name, recording)
    monkeypatch.setitem(runtime.AUTOMATIC, "cpu", (recording.name,))
    return recording


@pytest.fixture
def plan_calls(monkeypatch):
    """counts[op]: how often the op's plan function ran; every runner starts with an empty cache."""
    counts = {}
    for name, runner in registry.RUNNERS.items():
        def counted(*args, _plan=runner.family.plan, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _plan(*args, **kwargs)
        monkeypatch.setattr(runner, "family", dataclasses.replace(runner.family, plan=counted))
        monkeypatch.setattr(runner, "plans", {})
    return counts


@pytest.mark.parametrize("route", ROUTES)
def test_a_repeated_call_is_planned_once(backend, plan_calls, route):
    rms_norm = ROUTES[route]("rms_norm")
    x, w = torch.randn(2, 64), torch.rand(64)
    for _ in range(5):
        rms_norm(x, w, 1e-6)
    rms_norm(torch.randn(2, 64), torch.rand(64), 1e-6)  # new tensors, same key
    assert plan_calls["rms_norm"] == 1
    assert len(backend.launches) == 6


@pytest.mark.parametrize("route", ROUTES)
def test_a_changed_stride_dtype_or_scalar_decides_afresh(backend, plan_calls, route):
    rms_norm = ROUTES[route]("rms_norm")
    x, w = torch.randn(4, 64), torch.rand(64)
    rms_norm(x, w, 1e-6)
    assert plan_calls["rms_norm"] == 1
    strided = strided_copy(x)  # same shape and dtype, other strides: needs a contiguous copy
    assert strided.shape == x.shape and strided.stride() != x.stride()
    assert registry.RUNNERS["rms_norm"].lookup((strided, w, 1e-6, 0.0)).copies == (0,)
    rms_norm(strided, w, 1e-6)
    assert registry.RUNNERS["rms_norm"].lookup((x, w, 1e-6, 0.0)).copies == ()
    assert plan_calls["rms_norm"] == 2
    rms_norm(x.half(), w.half(), 1e-6)
    assert plan_calls["rms_norm"] == 3
    rms_norm(x, w, 1e-5)
    assert plan_calls["rms_norm"] == 4
    rms_norm(x, None, 1e-6)
    assert plan_calls["rms_norm"] == 5
    rms_norm(x, w, 1e-6)
    assert plan_calls["rms_norm"] == 5
    assert len(registry.RUNNERS["rms_norm"].plans) == 5  # contiguous, strided, half, eps 1e-5, no weight


def test_a_strided_call_after_a_contiguous_one_computes_on_contiguous_copies(backend):
    """The key holds strides: a cached contiguous decision never skips the copy a strided input needs."""
    seen = []
    backend.launch = lambda family, plan, tensors: seen.append(tensors["x"].is_contiguous())
    x = torch.randn(4, 64)
    ops.silu(x)
    ops.silu(x.t().contiguous().t())
    ops.silu(x)
    assert seen == [True, True, True]


@pytest.mark.parametrize("route", ROUTES)
def test_bad_input_raises_after_a_cached_good_call(backend, route):
    rms_norm, rope = ROUTES[route]("rms_norm"), ROUTES[route]("rope")
    x, w = torch.randn(2, 64), torch.rand(64)
    rms_norm(x, w, 1e-6)
    with pytest.raises(ValueError, match="mpskernels.rms_norm: eps must be >= 0"):
        rms_norm(x, w, -1.0)
    with pytest.raises(ValueError, match=r"weight must have shape \(64,\)"):
        rms_norm(x, torch.rand(63), 1e-6)
    with pytest.raises(TypeError, match="mpskernels.rms_norm: all tensors must have one dtype"):
        rms_norm(x, w.half(), 1e-6)
    with pytest.raises(TypeError, match="mpskernels.rms_norm: x has dtype torch.float64"):
        rms_norm(x.double(), w.double(), 1e-6)
    if route == "ops":  # the dispatcher refuses a str for a float itself, by the schema
        with pytest.raises(TypeError, match="mpskernels.rms_norm: eps must be a float"):
            rms_norm(x, w, "1e-6")

    q, k = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 3, 16)
    cos, sin = rope_kernels.tables(8, 16, False, torch.float32)
    rope(q, k, cos, sin, None, 5, False)
    with pytest.raises(ValueError, match="offset"):
        rope(q, k, cos, sin, None, 6, False)  # rows 6..8 of 8
    if route == "ops":  # the dispatcher converts 1 to a bool itself, by the schema
        rope(q, k, cos, sin, None, 5, True)
        with pytest.raises(TypeError, match="interleaved must be a bool"):
            rope(q, k, cos, sin, None, 5, 1)  # 1 == True and hashes alike: the key tells them apart


@pytest.mark.parametrize("route", ROUTES)
def test_a_validate_that_reads_values_runs_on_every_call(backend, route):
    """rope's position ids are read on CPU: same shapes, ids out of range, after a cached good call."""
    rope = ROUTES[route]("rope")
    q, k = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 3, 16)
    cos, sin = rope_kernels.tables(8, 16, False, torch.float32)
    rope(q, k, cos, sin, torch.tensor([0, 1, 7]), 0, False)
    with pytest.raises(ValueError, match=r"position_ids must lie in \[0, 8\)"):
        rope(q, k, cos, sin, torch.tensor([0, 1, 8]), 0, False)


def test_a_value_check_with_nothing_to_read_is_not_repeated(backend):
    """rope without position ids (Hugging Face passes per-position tables) has no values to check: its repeated
    calls skip the value check; with CPU ids every call reads them."""
    q, k = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 3, 16)
    cos, sin = rope_kernels.tables(8, 16, False, torch.float32)
    runner = registry.RUNNERS["rope"]
    assert not runner.lookup((q, k, cos[:3], sin[:3], None, 0, False)).revalidate
    assert runner.lookup((q, k, cos, sin, torch.tensor([0, 1, 7]), 0, False)).revalidate


def test_kv_cache_aliasing_is_refused_after_a_cached_good_call(backend):
    storage = torch.zeros(2 * 8 * 16)
    k_cache, v_cache = storage.view(1, 2, 8, 16), torch.zeros(1, 2, 8, 16)
    k, v = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 1, 16)
    ops.kv_cache_append(k_cache, v_cache, k, v, 0)
    aliased = storage[:32].view(1, 2, 1, 16)  # the same key as k: shape, strides, dtype, device
    assert registry.RUNNERS["kv_cache_append"].key(k_cache, v_cache, aliased, v, 0) == \
        registry.RUNNERS["kv_cache_append"].key(k_cache, v_cache, k, v, 0)
    with pytest.raises(ValueError, match="k shares memory with k_cache"):
        ops.kv_cache_append(k_cache, v_cache, aliased, v, 0)


@pytest.mark.parametrize("route", ROUTES)
def test_gradients_still_flow_after_a_cached_call_without_them(backend, route):
    rms_norm = ROUTES[route]("rms_norm")
    x, w = torch.randn(2, 64), torch.rand(64)
    rms_norm(x, w, 1e-6)
    with use_backend("reference"):  # the reference computes real values (the recording backend writes none)
        x.requires_grad_(True)
        out = rms_norm(x, w, 1e-6)
        assert out.grad_fn is not None
        out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_a_dispatch_mode_still_sees_the_op(backend):
    """The Autograd kernel runs the call itself only when the op's own kernel is next: a dispatch mode below
    autograd gets the call as before."""
    seen = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(2, 64)
    torch.ops.mpskernels.silu(x)  # cached, and the fast key set remembered
    with Recorder():
        torch.ops.mpskernels.silu(x)
    assert "mpskernels.silu.default" in seen


@pytest.mark.parametrize("name", ["silu", "rms_norm", "add_rms_norm", "softmax"])
def test_results_are_identical_with_the_cache_on_and_off(monkeypatch, name):
    family = registry.RUNNERS[name].family
    calls = [args for args in family.examples(torch.float32)][:3]
    calls += [tuple(strided_copy(a) if isinstance(a, torch.Tensor) else a for a in args) for args in calls]
    results = {}
    for cached in (True, False):
        monkeypatch.setattr(registry, "launch_cache", cached)
        monkeypatch.setattr(registry.RUNNERS[name], "plans", {})
        with use_backend("emulator"):
            results[cached] = [[ROUTES[route](name)(*args) for route in ROUTES for _ in range(2)] for args in calls]
        assert bool(registry.RUNNERS[name].plans) == cached
    for on, off in zip(results[True], results[False]):
        for a, b in zip(on, off):
            for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)


def test_the_cxx_key_tells_apart_what_the_python_key_does():
    cxx, python = cxx_key(), registry.key_function("(Tensor x, Tensor? w, int n, bool b, float f) -> Tensor")
    x = torch.randn(4, 6)
    calls = [
        (x, None, 1, True, 0.5), (torch.randn(4, 6), None, 1, True, 0.5),  # equal keys: other tensor, same meta
        (x.t().contiguous().t(), None, 1, True, 0.5),  # strides
        (x.double(), None, 1, True, 0.5), (x.requires_grad_(False).clone().requires_grad_(), None, 1, True, 0.5),
        (torch.randn(4, 6, device="meta"), None, 1, True, 0.5), (torch.randn(24), None, 1, True, 0.5),
        (torch.randn(6, 4), None, 1, True, 0.5), (x, x, 1, True, 0.5), (x, None, True, True, 0.5),
        (x, None, 1, 1, 0.5), (x, None, 1, True, 1), (x, None, 1, True, 0.25), (x, None, None, True, 0.5),
    ]
    for a in calls:
        for b in calls:
            assert (cxx(*a) == cxx(*b)) == (python(*a) == python(*b)), (a, b)
    assert python(*calls[0]) == python(*calls[1]) and cxx(*calls[0]) == cxx(*calls[1])
    with pytest.raises(TypeError):
        hash(cxx(x, None, [1], True, 0.5))  # an unhashable argument fails the lookup, as in Python


def test_a_stale_build_lock_is_cleared_and_a_fresh_one_kept(tmp_path, monkeypatch):
    # a process killed mid-build leaves torch's lock file, on which every later load() would wait forever
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose=False: str(tmp_path))
    lock = tmp_path / "lock"
    lock.touch()
    assert not cxx_host.clear_stale_lock(cpp_extension) and lock.exists()  # a build may be running
    later = lock.stat().st_mtime + cxx_host.STALE_LOCK_S + 1
    assert cxx_host.clear_stale_lock(cpp_extension, now=later) and not lock.exists()
    assert not cxx_host.clear_stale_lock(cpp_extension, now=later)  # nothing to clear


@pytest.fixture
def build_folder(tmp_path, monkeypatch):
    """An empty build folder of the C++ host path, in place of torch's."""
    from torch.utils import cpp_extension

    real = cpp_extension._get_build_directory(cxx_host.NAME, verbose=False)
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose=False: str(tmp_path))
    return tmp_path, os.path.join(real, f"{cxx_host.NAME}.so")


def test_a_current_build_loads_without_waiting_on_a_held_lock(build_folder, monkeypatch):
    # the previous session's hang: a lock left by a killed build made the test session's first load wait forever
    folder, real = build_folder
    if not os.path.isfile(real):
        pytest.skip("the C++ host path is not built on this machine")
    shutil.copy(real, folder / f"{cxx_host.NAME}.so")
    (folder / "lock").touch()
    monkeypatch.setattr(cxx_host, "_build_in_child", lambda path: pytest.fail("a current build was rebuilt"))
    module = cxx_host.load.__wrapped__()
    assert module is not None and module.key(torch.zeros(2), 1) == cxx_key()(torch.ones(2), 1)


def test_a_missing_or_older_build_is_built_in_a_child(build_folder, monkeypatch):
    folder, _ = build_folder
    built = []
    monkeypatch.setattr(cxx_host, "_build_in_child", lambda path: built.append(path) or False)
    assert cxx_host.load.__wrapped__() is None and len(built) == 1  # missing
    stale = folder / f"{cxx_host.NAME}.so"
    stale.write_bytes(b"an older build")
    os.utime(stale, (0, 0))
    assert cxx_host.load.__wrapped__() is None and len(built) == 2  # older than its source


@pytest.mark.parametrize("script", ["import time; time.sleep(10)", "raise SystemExit(3)"])
def test_a_slow_or_failing_child_build_leaves_the_python_key(build_folder, monkeypatch, script):
    monkeypatch.setattr(cxx_host, "_BUILD", script)
    monkeypatch.setattr(cxx_host, "BUILD_WAIT_S", 1)
    started = time.monotonic()
    assert cxx_host.load.__wrapped__() is None
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("edit", [
    lambda t: t.__setitem__("cpu", ("emulator",)), lambda t: t.update(cpu=("emulator",)),
    lambda t: t.setdefault("cpu", ("emulator",)), lambda t: t.__ior__({"cpu": ("emulator",)}),
])
@pytest.mark.parametrize("undo", [
    lambda t: t.pop("cpu"), lambda t: t.__delitem__("cpu"), lambda t: t.popitem(),
])
def test_every_edit_of_the_automatic_table_forgets_the_cached_choice(monkeypatch, edit, undo):
    # the automatic choice is cached per device; an edit that kept it (dict.pop once did) left a benchmark's
    # no-launch backend serving every later CPU call of the process
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "AUTOMATIC", runtime._Table())  # only "cpu" in it: popitem removes that
    assert runtime.choose_backend(cpu) == (None, False)
    edit(runtime.AUTOMATIC)
    assert runtime.choose_backend(cpu) == (runtime.BACKENDS["emulator"], False)
    undo(runtime.AUTOMATIC)
    assert runtime.choose_backend(cpu) == (None, False)
    runtime.AUTOMATIC["cpu"] = ("emulator",)
    runtime.choose_backend(cpu)
    runtime.AUTOMATIC.clear()
    assert runtime.choose_backend(cpu) == (None, False)
