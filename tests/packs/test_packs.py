"""Kernel packs: the data format, its restricted formulas, source checks, running a pack, and optimize()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels.packs import (DeclarationError, FormulaError, KernelPack, PackCallError, PackError, SourceError,
                              check_pack_source, class_key, load_pack, parse_declaration)
from mpskernels.packs.formula import TensorInfo, evaluate
from mpskernels.problem import parse_problem
from mpskernels.verify import VerifyOptions, verify_problem


# The example the generation prompt shows a model: a problem, its kernel and its launch declaration.
EXAMPLE = Path(mpskernels.__file__).parent / "generation" / "examples" / "rms_norm"
SOURCE = (EXAMPLE / "kernel.metal").read_text()
DECLARATION = json.loads((EXAMPLE / "declaration.json").read_text())
GROUP = DECLARATION["launches"][0]["group_size"][0]
# The example problem at emulator-sized shapes (48 is not a multiple of the 4-element reads' 32-lane groups).
RMS_NORM = (EXAMPLE / "problem.py").read_text().replace("dim = 4096", "dim = 48").replace("batch_size = 16",
                                                                                          "batch_size = 3")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_pack(folder: Path, module_class: str = class_key(RMSNorm), **changes) -> KernelPack:
    declaration = parse_declaration({**DECLARATION, **changes})
    return KernelPack("row_rms", SOURCE, declaration, module_class, provenance={"author": "test"}).save(folder)


# ---- formulas ----

@pytest.mark.parametrize("formula, value", [
    ("x.shape", (3, 4, 5)), ("x.shape[:-1] + (1,)", (3, 4, 1)), ("rows(x) * 32", 384), ("cdiv(x.numel(), 256)", 1),
    ("x.dtype", "float32"), ("x.ndim == 3 and eps < 1", True), ("round_up(x.shape[-1], 32)", 32),
    ("16 if x.shape[-1] > 4 else 8", 16), (7, 7),
])
def test_formulas_evaluate_over_shapes_and_attributes(formula, value):
    assert evaluate(formula, {"x": TensorInfo((3, 4, 5), "float32"), "eps": 1e-5}) == value


@pytest.mark.parametrize("formula, message", [
    ('__import__("os")', "may be called"), ("x.__class__", "attribute .__class__ is not allowed"),
    ('open("f")', "may be called"), ("(1,) * 10**9", "cannot be repeated"), ("'a' * 10**9", "cannot be repeated"),
    ("2 ** 1000", "exponent 1000 is too large"), ("y + 1", "unknown name 'y'"), ("lambda: 1", "Lambda"),
    ("[i for i in x.shape]", "ListComp"), ("x.shape.count(3)", "may be called"), ("1 +", "not valid"),
    ("x.shape[7]", "IndexError"), ("1 // 0", "ZeroDivisionError"),
])
def test_formulas_refuse_everything_else_by_name(formula, message):
    with pytest.raises(FormulaError, match="formula .*" + message.replace("(", r"\(").replace("*", r"\*")):
        evaluate(formula, {"x": TensorInfo((3, 4, 5), "float32")})


# ---- declarations ----

@pytest.mark.parametrize("change, message", [
    ({"inputs": []}, "inputs must list at least one name"),
    ({"outputs": {}}, "outputs must map"),
    ({"outputs": {"out": {"shape": "x.shape"}}}, "outputs.out must have exactly the fields shape and dtype"),
    ({"dtypes": ["float64"]}, "dtypes: 'float64' is not one of"),
    ({"launches": []}, "launches must be a non-empty list"),
    ({"launches": [{**DECLARATION["launches"][0], "buffers": ["x", "w"]}]},
     r"launches\[0\]\.buffers\[1\]: 'w' is not an input, parameter or output"),
    ({"launches": [{**DECLARATION["launches"][0], "buffers": [{"double": "eps"}]}]}, "scalar type 'double'"),
    ({"launches": [{**DECLARATION["launches"][0], "threads": ["os.system('x')"]}]},
     r"launches\[0\]\.threads\[0\]: formula"),
    ({"launches": [{**DECLARATION["launches"][0], "kernel": "rm -rf"}]}, "kernel must be a kernel host name"),
    ({"returns": ["nope"]}, "returns: 'nope' is not an output"),
    ({"attributes": ["weight"]}, "used twice"),
    ({"extra": 1}, "unknown field"),
])
def test_declaration_errors_name_the_field(change, message):
    with pytest.raises(DeclarationError, match=message):
        parse_declaration({**DECLARATION, **change})


def test_a_declaration_survives_a_json_round_trip():
    declaration = parse_declaration(DECLARATION)
    assert parse_declaration(json.loads(json.dumps(declaration.to_json()))) == declaration


# ---- source checks ----

@pytest.mark.parametrize("line, message", [
    ('extern "C" int system(const char*);', "'extern' is not allowed"),
    ('void f() { asm("nop"); }', "'asm' is not allowed"),
    ("#include <stdlib.h>", "#include <stdlib.h> is not allowed"),
    ('#include "/etc/passwd"', '#include "/etc/passwd" is not allowed'),
])
def test_pack_sources_may_not_reach_the_host(line, message):
    with pytest.raises(SourceError, match=r"kernel.metal:3: " + message):
        check_pack_source("#include <metal_stdlib>\nusing namespace metal;\n" + line + "\n")


def test_a_plain_metal_source_passes_the_source_checks():
    check_pack_source(SOURCE)


# ---- saving and loading ----

def test_a_saved_pack_loads_back(tmp_path):
    saved = make_pack(tmp_path / "pack")
    loaded = load_pack(tmp_path / "pack")
    assert loaded.declaration == saved.declaration and loaded.source == SOURCE
    assert loaded.module_class == class_key(RMSNorm) and loaded.provenance == {"author": "test"}


def test_a_hand_edited_source_is_refused(tmp_path):
    make_pack(tmp_path / "pack")
    (tmp_path / "pack" / "kernel.metal").write_text(SOURCE + "\n// edited\n")
    with pytest.raises(PackError, match="does not match the hash"):
        load_pack(tmp_path / "pack")


def test_loading_names_what_is_missing(tmp_path):
    with pytest.raises(PackError, match="missing pack.json"):
        load_pack(tmp_path)


# ---- running ----

@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_pack_passes_the_verifier_on_the_emulator(tmp_path, emulator, dtype):
    problem = parse_problem(RMS_NORM, name="rms")
    pack = make_pack(tmp_path / "pack", class_key(problem.at().namespace["Model"]))
    verdict = verify_problem(problem, pack.make_candidate, VerifyOptions(dtype=dtype, seeds=(0, 1)))
    assert verdict.correct, verdict.feedback()
    assert verdict.launches >= verdict.comparisons


def test_a_pack_whose_grid_is_too_small_is_rejected_by_the_verifier(tmp_path, emulator):
    problem = parse_problem(RMS_NORM, name="rms")
    short = [{**DECLARATION["launches"][0], "threads": [f"(rows(x) - 1) * {GROUP}"]}]  # forgets the last row
    pack = make_pack(tmp_path / "pack", class_key(problem.at().namespace["Model"]), launches=short)
    verdict = verify_problem(problem, pack.make_candidate, VerifyOptions(seeds=(0,)))
    assert not verdict.correct and "MISMATCH" in verdict.failures[0].detail


def test_a_strict_pack_refuses_what_it_does_not_cover(tmp_path, emulator):
    pack = make_pack(tmp_path / "pack")
    runner = pack.make_candidate(RMSNorm(8), [])
    with pytest.raises(PackCallError, match="dtype torch.bfloat16 is not among the pack's dtypes"):
        runner(torch.randn(2, 8, dtype=torch.bfloat16))
    with pytest.raises(PackCallError, match="forward takes 1 positional input"):
        runner(torch.randn(2, 8), torch.randn(2, 8))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = RMSNorm(40)
        self.proj = nn.Linear(40, 40)

    def forward(self, x):
        return self.proj(self.norm(x))


def test_optimize_swaps_a_module_for_its_pack_and_checks_it(tmp_path, emulator):
    make_pack(tmp_path / "pack")
    model = Block().eval()
    x = torch.randn(3, 40)
    want = model(x)
    mpskernels.optimize(model, example_inputs=(x,), kernel_packs=[tmp_path / "pack"])
    entry = next(e for e in model.mpskernels_report.entries if e.module == "norm")
    assert (entry.status, entry.kernel, entry.matched_by) == ("swapped", "pack:row_rms", "kernel pack")
    from mpskernels import launches
    before = launches.count()
    with torch.no_grad():  # where autograd records, a swapped module runs its own forward (issue 15 item 1)
        torch.testing.assert_close(model(x), want)
    assert launches.count() > before  # the pack's kernel ran
    mpskernels.restore(model)
    before = launches.count()
    model(x)
    assert launches.count() == before


def test_optimize_rolls_back_a_pack_that_disagrees(tmp_path, emulator):
    make_pack(tmp_path / "pack", launches=[{**DECLARATION["launches"][0], "buffers": [
        "x", "weight", "out", {"float": "eps * 1000"}, {"uint": "x.shape[-1]"}]}])
    model = Block().eval()
    mpskernels.optimize(model, example_inputs=(torch.randn(3, 40),), kernel_packs=[tmp_path / "pack"])
    entry = next(e for e in model.mpskernels_report.entries if e.module == "norm")
    assert entry.status == "rolled back"


def test_without_a_kernel_backend_a_swapped_pack_runs_the_original_module(tmp_path):
    make_pack(tmp_path / "pack")
    model = Block().eval()
    x = torch.randn(3, 40)
    want = model(x)
    mpskernels.optimize(model, kernel_packs=[tmp_path / "pack"])  # on CPU the automatic choice is the reference
    from mpskernels import launches
    before = launches.count()
    torch.testing.assert_close(model(x), want, rtol=0, atol=0)
    assert launches.count() == before


def test_the_example_pack_handles_rows_longer_than_a_threadgroup_covers(tmp_path, emulator):
    long_rows = RMS_NORM.replace("dim = 48", "dim = 4099").replace("batch_size = 3", "batch_size = 2")
    problem = parse_problem(long_rows, name="rms")
    pack = make_pack(tmp_path / "pack", class_key(problem.at().namespace["Model"]))
    verdict = verify_problem(problem, pack.make_candidate, VerifyOptions(seeds=(0,), distributions=("normal",),
                                                                         held_out=False, sensitivity=False))
    assert verdict.correct, verdict.feedback()


@pytest.mark.parametrize("change, check", [
    # Launches, but its store is gone: the output keeps the NaN it was allocated with.
    (("yr[j] = T(float(xr[j]) * scale * float(w[j]));", "(void)yr;"), "output 0 matches the reference"),
    # Writes the result over its (const-cast) input as well as into the output.
    (("yr[j] = T(float(xr[j]) * scale * float(w[j]));",
      "{ yr[j] = T(float(xr[j]) * scale * float(w[j])); ((device T*)xr)[j] = yr[j]; }"), "inputs unchanged"),
])
def test_cheating_packs_are_rejected(tmp_path, emulator, change, check):
    problem = parse_problem(RMS_NORM, name="rms")
    source = SOURCE.replace(*change)
    assert source != SOURCE
    declaration = parse_declaration(DECLARATION)
    pack = KernelPack("cheat", source, declaration, class_key(problem.at().namespace["Model"])).save(tmp_path)
    verdict = verify_problem(problem, pack.make_candidate, VerifyOptions(seeds=(0,)))  # strict: outputs start NaN
    assert not verdict.correct and verdict.failures[0].name.startswith(check), verdict.feedback()


def test_a_regenerated_pack_of_the_same_name_is_not_the_same_kernel_to_the_timing_cache(tmp_path):
    from mpskernels.optimize.find import pack_replacement

    first = make_pack(tmp_path / "first")
    regenerated = KernelPack("row_rms", SOURCE + "\n// regenerated\n", first.declaration, first.module_class,
                             provenance={"author": "test"}).save(tmp_path / "second")
    a, b = (pack_replacement(RMSNorm(8), [p]) for p in (first, regenerated))
    assert a.kernel == b.kernel == "pack:row_rms"  # the report names both alike
    assert a.version and b.version and a.version != b.version  # timing decisions are cached apart
