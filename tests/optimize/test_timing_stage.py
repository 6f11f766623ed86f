"""optimize()'s timing stage on a fake GPU: slower swaps are rolled back, faster ones kept, noise keeps the
original, decisions are cached per machine and shape, a corrupt cache is ignored with a warning."""

import json

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels.bench.timing import Timing
from mpskernels.optimize import OptimizeConfig, cache, optimize, swapped_modules
from mpskernels.optimize.timing import decide

from .fakes import CostlySiLU, gpu  # noqa: F401  (fixture)

X = torch.randn(2, 8)
US = 1e-6


def silu_model(device, original_us, kernel_us):
    device.set_cost("silu", *(t * US for t in kernel_us))
    return nn.Sequential(CostlySiLU(device, *(t * US for t in original_us)))


def test_a_slower_kernel_is_rolled_back_with_both_times(gpu):
    model = optimize(silu_model(gpu, [33], [41]), example_inputs=(X,))
    report = model.mpskernels_report
    (entry,) = report.entries
    assert entry.status == "rolled back" and entry.detail == "slower: 41 µs vs 33 µs"
    assert (entry.before_us, entry.after_us) == (pytest.approx(33), pytest.approx(41))
    assert entry.backend == "metal" and entry.launches == 1
    assert swapped_modules(model) == {}
    assert report.timing == "timed on metal"
    assert report.timed_total() == (pytest.approx(33), pytest.approx(33))  # what runs now: the original


def test_a_faster_kernel_is_kept_and_the_report_shows_the_times(gpu):
    model = optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    report = model.mpskernels_report
    (entry,) = report.swapped
    assert swapped_modules(model) == {"0": "silu"}
    assert "faster: 10 µs vs 33 µs (3.30x)" in entry.detail
    assert "tolerance atol" in entry.detail  # the tolerance applied, next to the errors
    assert entry.backend == "metal" and entry.launches == 1
    assert "timed modules 33 µs -> 10 µs (3.30x)" in str(report)
    torch.testing.assert_close(model(X), torch.nn.functional.silu(X))


def test_a_gain_within_the_noise_keeps_the_original(gpu):
    # 5% faster on the median, but each variant's runs spread by about 20%: not a measured gain
    model = optimize(silu_model(gpu, [30, 36, 30, 36], [28.5, 34.2, 28.5, 34.2]), example_inputs=(X,))
    (entry,) = model.mpskernels_report.entries
    assert entry.status == "rolled back" and entry.detail.startswith("not faster beyond the noise")
    assert swapped_modules(model) == {}


def test_the_keep_rule_on_hand_built_timings():
    def t(median, q1=None, q3=None):
        return Timing(median, q1 if q1 is not None else median, q3 if q3 is not None else median, 0, 0, 10)

    assert decide(t(0.033), t(0.041)).reason == "slower: 41 µs vs 33 µs"
    assert decide(t(0.033), t(0.033)).keep is False  # a tie keeps the original
    assert decide(t(0.100), t(0.098)).keep is False  # 2%: under the minimum gain of 3%
    assert decide(t(0.100), t(0.090)).keep is True  # 10%, no noise
    assert decide(t(0.100, 0.090, 0.110), t(0.090, 0.080, 0.100)).keep is False  # 10% with ±10% noise
    assert decide(t(2.0), t(1.0)).reason == "faster: 1 ms vs 2 ms (2.00x)"


def test_a_second_optimize_times_nothing_and_a_new_torch_times_again(gpu, monkeypatch):
    optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    assert gpu.syncs > 0
    gpu.syncs = 0
    model = optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    assert gpu.syncs == 0  # the decision came from the cache
    assert model.mpskernels_report.swapped[0].detail.endswith("faster: 10 µs vs 33 µs (3.30x) (cached decision)")
    optimize(silu_model(gpu, [33], [10]), example_inputs=(torch.randn(3, 8),))  # another shape: timed
    assert gpu.syncs > 0
    gpu.syncs = 0
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    assert gpu.syncs > 0  # another torch: another machine key


def test_timing_always_times_again_and_refreshes_the_cache(gpu):
    optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    gpu.syncs = 0
    model = optimize(silu_model(gpu, [33], [41]), OptimizeConfig(timing="always"), example_inputs=(X,))
    assert gpu.syncs > 0 and model.mpskernels_report.entries[0].detail == "slower: 41 µs vs 33 µs"
    gpu.syncs = 0
    model = optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    assert gpu.syncs == 0 and model.mpskernels_report.entries[0].status == "rolled back"  # the refreshed decision


def test_a_corrupt_cache_is_ignored_with_a_warning_and_rewritten(gpu):
    path = cache.default_path()
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="ignoring the optimize\\(\\) decision cache"):
        model = optimize(silu_model(gpu, [33], [10]), example_inputs=(X,))
    assert swapped_modules(model) == {"0": "silu"}
    assert len(json.loads(path.read_text())["decisions"]) == 1


def test_timing_off_keeps_every_correct_swap_and_says_so(gpu):
    model = optimize(silu_model(gpu, [33], [41]), OptimizeConfig(timing="off"), example_inputs=(X,))
    assert swapped_modules(model) == {"0": "silu"} and gpu.syncs == 0
    assert model.mpskernels_report.timing.startswith("not timed: timing off")
    assert "not timed: timing off" in str(model.mpskernels_report)


def test_the_emulator_is_not_timed_under_auto():
    with mpskernels.use_backend("emulator"):
        model = optimize(nn.Sequential(nn.SiLU()), example_inputs=(X,))
    report = model.mpskernels_report
    assert swapped_modules(model) == {"0": "silu"} and report.timing.startswith("not timed: emulator")
    assert report.swapped[0].backend == "emulator" and report.swapped[0].launches == 1


class Cache:
    """A stateful argument (like a KV cache) whose copying costs the fake device 5 µs."""

    def __init__(self, device):
        self.device = device

    def __deepcopy__(self, memo):
        self.device.charge(5 * US)
        return Cache(self.device)


def test_a_call_with_a_stateful_argument_is_timed_on_copies_whose_cost_is_taken_off(gpu):
    from mpskernels.optimize.matchers import Replacement
    from mpskernels.optimize.plan import Call, Swap
    from mpskernels.optimize.timing import measure, stateful

    class Block(nn.Module):
        def forward(self, x, cache):
            cache.device.charge(30 * US)
            return x

    def kernel(x, cache):
        cache.device.charge(12 * US)
        return x

    call = Call((X, Cache(gpu)), {})
    assert stateful(call.args, call.kwargs) and not stateful((X, 3, None), {"mask": X})
    swap = Swap("block", Block(), Replacement("k", kernel, "type", full_signature=True), call=call)
    before, after = measure(swap, gpu.synchronize, lambda: gpu.now)
    assert (before.median_ms * 1e3, after.median_ms * 1e3) == (pytest.approx(30), pytest.approx(12))
