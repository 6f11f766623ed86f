"""The verifier's core: run a candidate against a problem's reference under every check of the project's
verification rules, and gather a Verdict.

Per case (seed x input distribution) the order is fixed so stale memory cannot help a candidate: the float64
oracle runs first, then freed memory is poisoned, then the candidate runs (before the reference in the op's dtype,
whose freed outputs it could otherwise pick up), then the reference in the op's dtype.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .. import launches
from ..problem import Problem, ProblemInstance, held_out_sizes
from ..tolerances import compare, finite_rms, tolerance_for
from . import inputs as inp
from .ops_used import compute_ops, record_ops
from .oracle import OracleFailure, WidenCreatedTensors, saturate, seed_forward
from .result import Verdict

# (reference model with the harness's weights, the problem's init inputs) -> the candidate model
CandidateFactory = Callable[[nn.Module, list], nn.Module]

# The bound on |candidate - float64 oracle| per element is
#     atol + rtol * |expected| + rtol * rms(expected) + REFERENCE_ERROR_FACTOR * max(|reference in its dtype - expected|,
#                                                                                     rms of that over the output)
# with the dtype's atol and rtol. The rms term makes the relative tolerance also relative to the output's scale:
# an element near zero that arises from cancellation (a convolution over large inputs) carries rounding error of
# the size of the terms, not of its own size. The last term lets a candidate be as far from float64 as PyTorch's
# own computation in that dtype is: per element, but never less than the rms of PyTorch's error over the output.
# Per element alone, an element where PyTorch's errors happened to cancel allowed nothing: a LayerNorm over rows
# of 1 + bias + 1e-3 noise (level2/3, "tiny" inputs) whose kernel was 3000x more accurate than PyTorch's CPU op on
# the same fp32 rows still failed at 1.4% of the elements, by the fp32 rounding both share.
REFERENCE_ERROR_FACTOR = 2.0


@dataclass(frozen=True)
class VerifyOptions:
    seeds: tuple[int, ...] = (0, 1, 2)
    distributions: tuple[str, ...] = inp.DISTRIBUTIONS
    dtype: torch.dtype | None = None  # cast floating-point weights and inputs; None keeps the problem's
    device: str = "cpu"
    held_out: bool = True  # also run held-out sizes (first seed; as-given and normal inputs)
    sensitivity: bool = True  # perturb each input in turn; the candidate must follow the reference
    # The candidate must launch a kernel and must not run the reference's own compute ops (generated kernels,
    # kernel packs). False for optimize(), which leaves modules it did not swap to PyTorch.
    require_kernel: bool = True
    allowed_ops: frozenset[str] = field(default_factory=frozenset)  # aten ops a candidate may share with the reference
    weights_seed: int = 0


def candidate_from_class(cls: type[nn.Module]) -> CandidateFactory:
    """A factory for a KernelBench-style solution class: `cls(*init_inputs)`, then the reference's weights copied in
    (the harness owns the weights; never trust seeding order to make them equal)."""

    def make(reference: nn.Module, init_inputs: list) -> nn.Module:
        candidate = cls(*init_inputs)
        state = reference.state_dict()
        own = candidate.state_dict()
        if set(own) != set(state):
            missing, extra = sorted(set(state) - set(own)), sorted(set(own) - set(state))
            raise ValueError(f"{cls.__name__}'s parameters and buffers differ from the reference's: "
                             f"missing {missing or 'none'}, unexpected {extra or 'none'}")
        candidate.load_state_dict(state)
        return candidate

    return make


def verify_problem(problem: Problem, make_candidate: CandidateFactory, options: VerifyOptions = VerifyOptions(),
                   sizes: dict[str, int] | None = None) -> Verdict:
    """Verifies at `sizes` (default: the file's), then at the held-out sizes derived from them."""
    verdict = Verdict()
    instance = problem.at(sizes)
    verdict.sizes = dict(instance.sizes)
    _verify_instance(instance, make_candidate, options, verdict, options.seeds, options.distributions,
                     sensitivity=options.sensitivity, label="")
    if options.held_out and verdict.correct:
        for variant in held_out_sizes(problem, sizes):
            try:
                held = problem.at(variant)
                held.reference(options.weights_seed)(*held.inputs(options.seeds[0]))
            except Exception as e:  # noqa: BLE001 - a size the reference model itself cannot run
                verdict.skipped.append(f"held-out sizes {_diff(variant, instance.sizes)}: the reference fails "
                                       f"({type(e).__name__}), so they are not a valid test")
                continue
            _verify_instance(held, make_candidate, options, verdict, options.seeds[:1], ("as-given", "normal"),
                             sensitivity=False, label=f"held-out {_diff(variant, instance.sizes)}, ")
    return verdict


def verify_instance(instance: ProblemInstance, make_candidate: CandidateFactory,
                    options: VerifyOptions = VerifyOptions()) -> Verdict:
    """Verifies at one instance's sizes only (no held-out sizes)."""
    verdict = Verdict(sizes=dict(instance.sizes))
    _verify_instance(instance, make_candidate, options, verdict, options.seeds, options.distributions,
                     sensitivity=options.sensitivity, label="")
    return verdict


def _verify_instance(instance: ProblemInstance, make_candidate: CandidateFactory, options: VerifyOptions,
                     verdict: Verdict, seeds, distributions, *, sensitivity: bool, label: str) -> None:
    reference = instance.reference(options.weights_seed).to(options.device)
    if options.dtype:
        reference = reference.to(options.dtype)
    # A fresh model given the reference's weights, not a deepcopy: a deepcopy shares what the model's functions
    # close over (KernelBench's minGPT keeps `self.mlpf = lambda x: m.c_proj(...)`), which would stay float32.
    oracle = instance.reference(options.weights_seed)
    oracle.load_state_dict(reference.state_dict())
    oracle = oracle.to("cpu").to(torch.float64)
    try:
        candidate = make_candidate(copy.deepcopy(reference), instance.init_inputs())
        candidate = candidate.to(options.device).eval()
        if options.dtype is not None:
            candidate = candidate.to(options.dtype)
    except Exception as e:  # noqa: BLE001 - the candidate's failure is a verdict, not a crash
        verdict.add(f"{label}candidate builds", False, f"{type(e).__name__}: {e}")
        return
    runner = _CaseRunner(reference, oracle, candidate, options, verdict)
    with torch.inference_mode():
        for seed in seeds:
            given = instance.inputs(seed)
            for distribution in distributions:
                case = inp.cast(inp.redistribute(given, distribution, seed), options.dtype, options.device)
                if not runner.run(case, f"{label}seed {seed}, {distribution}"):
                    return  # one failure is enough feedback; later cases would repeat it
        if sensitivity:
            runner.sensitivity(instance, options, label)


class _CaseRunner:
    def __init__(self, reference: nn.Module, oracle: nn.Module, candidate: nn.Module, options: VerifyOptions,
                 verdict: Verdict):
        self.reference, self.oracle, self.candidate = reference, oracle, candidate
        self.options, self.verdict = options, verdict
        self.reference_ops: set[str] | None = None

    def run(self, case: list[Any], where: str) -> bool:
        """One comparison; returns False when a check failed."""
        try:
            expected64 = _call_oracle(self.oracle, inp.cast(case, torch.float64, "cpu"))
        except OracleFailure as e:
            self.verdict.harness_error = f"{where}: {e}"
            return False
        expected_leaves = inp.leaves(expected64)
        if expected_leaves and all(isinstance(t, torch.Tensor) and t.is_floating_point() and not t.isfinite().any()
                                   for t in expected_leaves):
            self.verdict.skipped.append(f"{where}: the reference output is all NaN/Inf for these inputs")
            return True
        ok, result = self._run_candidate(case, expected_leaves, where)
        if not ok:
            return False
        reference_out = _call(self.reference, inp.clone(case))
        return self._compare(result, reference_out, expected64, where)

    def _run_candidate(self, case: list[Any], expected_leaves: list[Any], where: str) -> tuple[bool, Any]:
        pristine = inp.clone(case)
        inp.poison_free_memory([(tuple(t.shape), _case_dtype(case) if t.is_floating_point() else t.dtype)
                                for t in expected_leaves if isinstance(t, torch.Tensor)], self.options.device)
        before = launches.count()
        try:
            # the ops are recorded only where they are checked: under a dispatch mode torch.compile does not
            # compile (a compiled candidate would silently run eagerly)
            if self.options.require_kernel:
                result, ops = record_ops(lambda: _call(self.candidate, case))
            else:
                result, ops = _call(self.candidate, case), set()
        except Exception as e:  # noqa: BLE001
            return self._fail(f"candidate runs ({where})", f"{type(e).__name__}: {e}"), None
        launched = launches.count() - before
        self.verdict.launches += launched
        if self.options.require_kernel:
            if launched == 0:
                return self._fail(f"candidate launches a kernel ({where})",
                                  "the candidate returned without launching any kernel"), None
            forbidden = sorted(compute_ops(ops) & self._reference_compute_ops(case) - self.options.allowed_ops)
            if forbidden:
                return self._fail(f"candidate computes with its own kernels ({where})",
                                  f"it runs the PyTorch op(s) it should replace: {', '.join(forbidden)}"), None
        for i, (now, before_call) in enumerate(zip(inp.tensors(case), inp.tensors(pristine))):
            if not inp.identical(now, before_call):
                return self._fail(f"inputs unchanged ({where})", f"the candidate modified input {i} in place"), None
        for i, out in enumerate(inp.tensors(result)):
            for j, arg in enumerate(inp.tensors(case)):
                if inp.shares_memory(out, arg):
                    return self._fail(f"outputs are new tensors ({where})",
                                      f"output {i} shares memory with input {j}"), None
        return True, result

    def _reference_compute_ops(self, case: list[Any]) -> set[str]:
        if self.reference_ops is None:
            _, ops = record_ops(lambda: _call(self.reference, inp.clone(case)))
            self.reference_ops = compute_ops(ops)
        return self.reference_ops

    def _compare(self, result: Any, reference_out: Any, expected64: Any, where: str) -> bool:
        got, want, ref = inp.leaves(result), inp.leaves(expected64), inp.leaves(reference_out)
        if len(got) != len(want):
            return self._fail(f"output structure ({where})", f"the candidate returned {len(got)} value(s), "
                                                             f"the reference {len(want)}")
        for i, (g, w, r) in enumerate(zip(got, want, ref)):
            if not isinstance(w, torch.Tensor):
                if g != w:
                    return self._fail(f"output {i} ({where})", f"expected {w!r}, got {g!r}")
                continue
            if not isinstance(g, torch.Tensor) or tuple(g.shape) != tuple(r.shape) or g.dtype != r.dtype:
                shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
                return self._fail(f"output {i} shape and dtype ({where})",
                                  f"expected {tuple(r.shape)} {r.dtype}, got {shape} "
                                  f"{getattr(g, 'dtype', '')}")
            if inp.shares_memory(g, r):
                return self._fail(f"outputs are new tensors ({where})",
                                  f"output {i} shares memory with the reference's output")
            if not r.is_floating_point():
                self.verdict.comparisons += 1  # an exact comparison counts too (argmax, indices)
                if not torch.equal(g.cpu(), r.cpu()):
                    bad = (g.cpu() != r.cpu()).nonzero()[0].tolist()
                    return self._fail(f"output {i} matches ({where})",
                                      f"integer output differs, first at index {tuple(bad)}")
                continue
            w = saturate(w, r.dtype)  # beyond the dtype's range, its own computation gives an infinity
            reference_error = (r.detach().cpu().to(torch.float64) - w).abs()
            slack = REFERENCE_ERROR_FACTOR * reference_error.clamp(min=finite_rms(reference_error)) + \
                tolerance_for(r.dtype).rtol * finite_rms(w)
            c = compare(g, w, r.dtype, slack=slack)
            self.verdict.comparisons += 1
            missed = w.isinf() & (g.detach().cpu().to(torch.float64) != w)  # an infinity's bound is infinite too
            if bool(missed.any()):
                at = tuple(int(j) for j in missed.nonzero()[0])
                return self._fail(f"output {i} matches the reference ({where})",
                                  f"expected {float(w[at]):g} (beyond {r.dtype}'s range) at index {at}, "
                                  f"got {float(g[at]):.6g}")
            self.verdict.max_abs = max(self.verdict.max_abs, c.max_abs)
            self.verdict.max_rel = max(self.verdict.max_rel, c.max_rel)
            if not c.ok:
                detail = f"{c}" + (f"; expected {float(w[c.first_bad]):.6g}, got {float(g[c.first_bad]):.6g}"
                                   if c.first_bad else "")
                return self._fail(f"output {i} matches the reference ({where})", detail)
        self.verdict.add(f"outputs match ({where})", True)
        return True

    def sensitivity(self, instance: ProblemInstance, options: VerifyOptions, label: str) -> None:
        """Each tensor input in turn is redrawn (from get_inputs under another seed, so it stays in the problem's
        domain): where the reference's output changes, the candidate's must too, and still match."""
        base_seed = options.seeds[0]
        base = inp.cast(instance.inputs(base_seed), options.dtype, options.device)
        base_ref = inp.leaves(_call(self.reference, inp.clone(base)))
        base_cand = inp.leaves(_call(self.candidate, inp.clone(base)))
        flat = inp.leaves(base)
        for index, value in enumerate(flat):
            if not isinstance(value, torch.Tensor):
                continue
            other = inp.leaves(inp.cast(instance.inputs(base_seed + 1000 + index), options.dtype, options.device))
            if len(other) != len(flat) or not isinstance(other[index], torch.Tensor) \
                    or other[index].shape != value.shape or inp.identical(other[index], value):
                continue
            perturbed = list(flat)
            perturbed[index] = other[index]
            case = torch.utils._pytree.tree_unflatten(perturbed, torch.utils._pytree.tree_flatten(base)[1])
            ref = inp.leaves(_call(self.reference, inp.clone(case)))
            if all(_same(a, b) for a, b in zip(ref, base_ref)):
                continue  # the reference ignores this input too
            cand = inp.leaves(_call(self.candidate, inp.clone(case)))
            if all(_same(a, b) for a, b in zip(cand, base_cand)):
                self.verdict.add(f"{label}output depends on input {index}", False,
                                 f"the reference's output changes when input {index} changes, the candidate's "
                                 "does not")
                return
            if not self.run(case, f"{label}input {index} redrawn"):
                return
        self.verdict.add(f"{label}output depends on every input the reference reads", True)

    def _fail(self, name: str, detail: str) -> bool:
        return self.verdict.add(name, False, detail)


def _call(module: nn.Module, args: list[Any]) -> Any:
    seed_forward()  # random numbers drawn inside forward are the same in every call of a case
    return module(*args)


def _call_oracle(oracle: nn.Module, args: list[Any]) -> Any:
    """The float64 oracle's answer; OracleFailure when the model cannot run in float64 (the harness's failure)."""
    try:
        with WidenCreatedTensors():
            return _call(oracle, args)
    except Exception as e:  # noqa: BLE001 - whatever the model raises in float64 is the oracle's failure
        raise OracleFailure(f"the float64 oracle fails: {type(e).__name__}: {str(e).strip()[:300]}") from e


def _case_dtype(case: list[Any]) -> torch.dtype:
    """The dtype the outputs most likely have: the inputs' floating-point dtype (the oracle's outputs are float64)."""
    return next((t.dtype for t in inp.tensors(case) if t.is_floating_point()), torch.get_default_dtype())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and inp.identical(a.detach().cpu(), b.detach().cpu())
    return a == b


def _diff(variant: dict[str, int], base: dict[str, int]) -> dict[str, int]:
    return {n: v for n, v in variant.items() if base.get(n) != v}

