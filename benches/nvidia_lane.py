"""The NVIDIA lane (run by hand on a machine with an NVIDIA GPU, CuPy and PyTorch with CUDA).

Every kernel family declared in src/mpskernels/kernels/ runs through the CUDA translation of its shipped `.metal`
file (src/mpskernels/cuda/): its own examples and large, model-sized shapes, compared with its PyTorch reference
in float64 on the GPU at the tolerances of mpskernels.tolerances; compute-sanitizer racecheck, memcheck and
synccheck over each .metal file's examples (one process each); achieved bandwidth of the memory-bound kernels
against the measured device-to-device copy bandwidth, and every timed kernel against its PyTorch reference.
Writes docs/nvidia-lane.md (or --out).

    python benches/nvidia_lane.py [--families rms_norm,softmax] [--no-sanitizer] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

import mpskernels  # noqa: F401  (registers the ops; the lane reuses their checks, allocation and plans)
from mpskernels.cuda import runner
from mpskernels.cuda import timing as lane_timing
import json

from mpskernels.cuda.report import Check, LaneReport, SanitizerRun, Timing, from_json, merge, to_json, to_markdown
from mpskernels.kernels import FAMILIES
from mpskernels.kernels.rope import tables
from mpskernels.tolerances import Comparison, tolerance_for

ROOT = Path(__file__).resolve().parent.parent
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TIMED_DTYPES = (torch.float32, torch.bfloat16)
SANITIZER_TOOLS = ("racecheck", "memcheck", "synccheck")


# ---- shapes ----


@dataclass
class LargeCase:
    label: str
    args: tuple
    bytes_moved: int | None = -1  # -1: inputs + outputs (the minimum); None: not memory-bound (no bandwidth)


def large_cases(name: str, dtype: torch.dtype, device: str) -> list[LargeCase]:
    """Model-sized shapes: LLaMA-7B rows (hidden 4096, MLP 11008, 32 heads of 128), long sequences."""
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(dtype)

    def grid(*shape):
        """Multiples of 1/16 in [-3.75, 3.75]: x + residual is exact in every dtype, so the fused ops' rounded
        residual equals the float64 oracle's (as in the families' own examples, kernels/rms_norm.py)."""
        return (torch.randint(-60, 61, shape, generator=gen, device=device) / 16).to(dtype)

    def weight(n):
        return (torch.rand(n, generator=gen, device=device) + 0.5).to(dtype)

    tokens, hidden, mlp = 4096, 4096, 11008
    if name in ("silu", "mish", "hardswish"):
        return [LargeCase(f"x {tokens}x{mlp}", (randn(tokens, mlp, scale=3),))]
    if name == "gelu":
        return [LargeCase(f"x {tokens}x{mlp}", (randn(tokens, mlp, scale=3), "none")),
                LargeCase(f"x {tokens}x{mlp} tanh", (randn(tokens, mlp, scale=3), "tanh"))]
    if name == "swiglu":
        return [LargeCase(f"a, b {tokens}x{mlp}", (randn(tokens, mlp, scale=3), randn(tokens, mlp)))]
    if name == "geglu":
        return [LargeCase(f"a, b {tokens}x{mlp}", (randn(tokens, mlp, scale=3), randn(tokens, mlp), "none"))]
    if name == "swiglu_split":
        return [LargeCase(f"x {tokens}x{2 * mlp}", (randn(tokens, 2 * mlp, scale=3),))]
    if name == "geglu_split":
        return [LargeCase(f"x {tokens}x{2 * mlp}", (randn(tokens, 2 * mlp, scale=3), "none"))]
    if name == "bias_act":
        return [LargeCase(f"x {tokens}x{mlp}, gelu", (randn(tokens, mlp), randn(mlp), "gelu", -1)),
                LargeCase("x 8x320x64x64 channels, silu", (randn(8, 320, 64, 64), randn(320), "silu", 1))]
    if name == "rms_norm":
        return [LargeCase(f"x {tokens}x{hidden}", (randn(tokens, hidden), weight(hidden), 1e-5)),
                LargeCase("x 512x32768 (looped)", (randn(512, 32768), None, 1e-6))]
    if name == "add_rms_norm":
        return [LargeCase(f"x, residual {tokens}x{hidden}",
                          (grid(tokens, hidden), grid(tokens, hidden), weight(hidden), 1e-5))]
    if name == "layer_norm":
        return [LargeCase(f"x {tokens}x{hidden}", (randn(tokens, hidden, scale=2), weight(hidden), randn(hidden),
                                                   1e-5))]
    if name == "add_layer_norm":
        return [LargeCase(f"x, residual {tokens}x{hidden}", (grid(tokens, hidden), grid(tokens, hidden),
                                                            weight(hidden), randn(hidden), 1e-5))]
    if name == "group_norm":
        return [LargeCase("x 8x512x64x64, 32 groups", (randn(8, 512, 64, 64), 32, weight(512), randn(512), 1e-5))]
    if name in ("softmax", "log_softmax"):
        return [LargeCase("x 32x2048x2048 (block)", (randn(32, 2048, 2048, scale=4), None, 1.0)),
                LargeCase("x 2048x32000 (looped)", (randn(2048, 32000, scale=4), None, 1.0)),
                LargeCase("x 262144x128 (simd)", (randn(262144, 128, scale=4), None, 1.0)),
                LargeCase("x 8x32x512x512, mask 512x512", (randn(8, 32, 512, 512, scale=4), randn(512, 512), 0.125))]
    if name == "rope":
        seq = tokens
        cos, sin = tables(seq, 128, False, dtype)
        return [LargeCase(f"q 1x32x{seq}x128, k 1x8x{seq}x128",
                          (randn(1, 32, seq, 128), randn(1, 8, seq, 128), cos.to(device), sin.to(device), None, 0,
                           False))]
    if name == "kv_cache_append":
        k, v = randn(1, 32, 512, 128), randn(1, 32, 512, 128)
        moved = 2 * (k.numel() + v.numel()) * k.element_size()  # read the new rows, write them into the caches
        return [LargeCase("caches 1x32x4096x128, 512 new rows at 1024",
                          (randn(1, 32, 4096, 128), randn(1, 32, 4096, 128), k, v, 1024), moved)]
    if name == "attention":
        q, k, v = randn(1, 32, 2048, 128), randn(1, 32, 2048, 128), randn(1, 32, 2048, 128)
        qd, kd, vd = randn(4, 32, 1, 128), randn(4, 8, 4096, 128), randn(4, 8, 4096, 128)
        kv_len = 4000
        e = qd.element_size()
        decode_bytes = (2 * qd.numel() + 2 * 4 * 8 * kv_len * 128) * e  # q, out; K and V rows up to kv_len
        return [LargeCase("prefill 1x32x2048x128, causal", (q, k, v, None, True, None, None), None),
                LargeCase(f"decode 4x32 heads (8 KV) x 1 token over {kv_len} of 4096, D=128",
                          (qd, kd, vd, None, False, None, kv_len), decode_bytes)]
    return []


def to_device(args: tuple, device: str) -> tuple:
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def as_dtype(args: tuple, dtype: torch.dtype) -> tuple:
    """Floating tensors in `dtype` (the float64 oracle), others cloned (references may write in place)."""
    return tuple((a.to(dtype) if a.is_floating_point() else a.clone()) if isinstance(a, torch.Tensor) else a
                 for a in args)


def reference_results(family, args: tuple) -> tuple:
    from mpskernels import registry

    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)  # references may write in place
    out = family.reference(*args)
    outs = () if out is None else out if isinstance(out, tuple) else (out,)
    names = registry.argument_names(family.schema)
    return outs + tuple(args[names.index(m)] for m in family.mutates)


# ---- comparison on the GPU (tolerances.compare's rule, without moving large tensors to the CPU) ----


def compare_on_device(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> Comparison:
    tol = tolerance_for(dtype)
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(e.shape)}")
    diff = (a - e).abs()
    both_nan = a.isnan() & e.isnan()
    same_inf = a.isinf() & e.isinf() & (a == e)
    bad = ~(both_nan | same_inf | (diff <= tol.atol + tol.rtol * e.abs()))
    finite = ~(both_nan | same_inf)
    max_abs = float(diff[finite].max()) if finite.any() else 0.0
    max_rel = float((diff / e.abs().clamp_min(1e-30))[finite].max()) if finite.any() else 0.0
    count = int(bad.sum())
    first = tuple(int(i) for i in bad.nonzero()[0]) if count else None
    return Comparison(count == 0, max_abs, max_rel, count, first)


def check(family, dtype: torch.dtype, label: str, args: tuple, own_dtype_too: bool) -> Check:
    """Runs the translated kernel and compares every result with the float64 reference (and the op-dtype one)."""
    name = str(dtype).replace("torch.", "")
    try:
        got = runner.run(family, args)
        want64 = reference_results(family, as_dtype(args, torch.float64))
        want = reference_results(family, args) if own_dtype_too else (None,) * len(got)
        details = []
        ok = True
        for out, w64, w in zip(got, want64, want):
            cmp_dtype = out.dtype if out.is_floating_point() else torch.float32
            result = compare_on_device(out, w64, cmp_dtype)
            ok &= result.ok
            if w is not None and out.is_floating_point():
                own = compare_on_device(out, w, out.dtype)
                if not own.ok:
                    ok = False
                    details.append(f"against the {name} reference: {own}")
            details.append(str(result))
        torch.cuda.synchronize()
        return Check(family.name, name, label, ok, "; ".join(details))
    except runner.Unsupported as e:
        return Check(family.name, name, label, True, f"falls back to the reference by design ({e})")
    except Exception as e:  # noqa: BLE001  (every failure goes into the report)
        message = f"{type(e).__name__}: {e}".replace("\n", " ")
        return Check(family.name, name, label, False, message[:400])


# ---- timing ----


def median_us(fn, batches: int = 7, warmup: int = 3, batch_ms: float = 2.0) -> float:
    """The lane's timing rule (mpskernels.cuda.timing) with three warm-up calls and batches of up to 20 calls."""
    return lane_timing.median_us(fn, batches, warmup, batch_ms, max_batch=20)


def copy_bandwidth_gbps(nbytes: int = 2**30) -> float:
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    us = median_us(lambda: dst.copy_(src), batch_ms=5.0)
    return 2 * nbytes / (us * 1e-6) / 1e9  # read + write


def minimum_bytes(call: runner.PreparedCall) -> int:
    total = 0
    for name, v in call.inputs.items():
        if isinstance(v, torch.Tensor) and name not in call.family.mutates:
            total += v.numel() * v.element_size()
    total += sum(t.numel() * t.element_size() for t in call.outputs.values())
    return total


def time_case(family, dtype: torch.dtype, case: LargeCase) -> Timing | None:
    call = runner.prepare(family, case.args, poison=False)
    if call.plan is None:
        return None
    kernel_us = median_us(call.launch)
    ref_args = tuple(a.clone() if isinstance(a, torch.Tensor) and family.mutates else a for a in case.args)
    reference_us = median_us(lambda: family.reference(*ref_args))
    moved = minimum_bytes(call) if case.bytes_moved == -1 else case.bytes_moved
    return Timing(family.name, str(dtype).replace("torch.", ""), case.label, kernel_us, reference_us, moved)


# ---- compute-sanitizer ----


# Kernels with a planted bug, each run under the tool that should report it.
CONTROL_HEADER = "#include <metal_stdlib>\nusing namespace metal;\n"
CONTROLS = {
    "missing-barrier": ("racecheck", CONTROL_HEADER + """
kernel void missing_barrier(device float* out [[buffer(0)]], uint lid [[thread_position_in_threadgroup]],
                            uint n [[threads_per_threadgroup]]) {
  threadgroup float tile[256];
  tile[lid] = float(lid);
  out[lid] = tile[(lid + 1) % n];  // no threadgroup_barrier: races with the next lane's write
}
""", "missing_barrier", (256, 1, 1)),
    "write-past-end": ("memcheck", CONTROL_HEADER + """
kernel void write_past_end(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid + 4096] = 1.0f;  // the buffer holds 256 floats
}
""", "write_past_end", (256, 1, 1)),
    "divergent-barrier": ("synccheck", CONTROL_HEADER + """
kernel void divergent_barrier(device float* out [[buffer(0)]], uint lid [[thread_position_in_threadgroup]]) {
  if (lid % 64 < 16) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // not every thread of the threadgroup reaches it
  }
  out[lid] = 1.0f;
}
""", "divergent_barrier", (128, 1, 1)),
}


def control(name: str) -> int:
    from mpskernels.kernels.spec import LaunchPlan

    _, source, kernel, group = CONTROLS[name]
    out = torch.zeros(256, device="cuda")
    plan = LaunchPlan(kernel=kernel, buffers=("out",), threads=group, group_size=group)
    runner.run_source(source, plan, {"out": out})
    torch.cuda.synchronize()
    print(f"child control {name}: ran", flush=True)
    return 0


def child(source: str) -> int:
    if source.startswith("control:"):
        return control(source.split(":", 1)[1])
    """Runs the examples of every family of one .metal file (float32, float16): what the sanitizer watches."""
    failures = 0
    for family in FAMILIES:
        if family.source != source:
            continue
        for dtype in (torch.float32, torch.float16):
            for i, args in enumerate(family.examples(dtype)):
                result = check(family, dtype, f"example {i}", to_device(args, "cuda"), own_dtype_too=False)
                if not result.ok:
                    failures += 1
                    print(f"FAIL {family.name} {result.dtype} {result.case}: {result.detail}", flush=True)
    torch.cuda.synchronize()
    print(f"child {source}: {failures} failing case(s)", flush=True)
    return 0


def sanitize(source: str, tool: str, timeout: float, is_control: bool = False) -> SanitizerRun:
    sanitizer = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    command = [sanitizer, f"--tool={tool}", "--error-exitcode=99", "--print-limit=10"]
    if tool == "memcheck":
        command += ["--leak-check=no"]
    command += [sys.executable, str(Path(__file__).resolve()), "--child", source]
    # Without the caching allocator every tensor is its own allocation, so memcheck sees the tensor's real end.
    env = {**os.environ, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return SanitizerRun(source, tool, None, time.perf_counter() - start, f"timed out after {timeout:.0f} s",
                            is_control)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    log_dir = os.environ.get("OUT")
    if log_dir:
        with open(Path(log_dir) / "sanitizer.log", "a") as f:
            f.write(f"\n===== {tool} {source} rc={proc.returncode} =====\n{output[-20000:]}\n")
    summary = next((line.strip(" =") for line in output.splitlines()
                    if re.search(r"(ERROR|RACECHECK) SUMMARY: \d+ (errors?|hazards?)( displayed.*)?$", line.strip())),
                   "")
    errors = re.search(r"(\d+) (?:errors?|hazards?)", summary)
    found = errors is not None and errors.group(1) != "0"
    if is_control:
        return SanitizerRun(source, tool, found or proc.returncode == 99, seconds, summary or f"exit {proc.returncode}",
                            True)
    if "child " not in output:
        return SanitizerRun(source, tool, None, seconds, f"exit {proc.returncode}, no summary: "
                            f"{output.strip().splitlines()[-1][:200] if output.strip() else ''}".strip(), is_control)
    ok = proc.returncode == 0 and not found
    fails = [line for line in output.splitlines() if line.startswith("FAIL ")]
    if fails:
        summary += f"; {len(fails)} numeric failure(s) under the tool"
    return SanitizerRun(source, tool, ok, seconds, summary or f"exit {proc.returncode}")


# ---- the lane ----


def environment() -> dict[str, str]:
    props = torch.cuda.get_device_properties(0)
    env = {"GPU": f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
                  f"compute capability {props.major}.{props.minor})",
           "PyTorch": torch.__version__, "CUDA (PyTorch)": str(torch.version.cuda), "Python": platform.python_version()}
    try:
        cp = runner.cupy()
        env["CuPy"] = cp.__version__
        major, minor = cp.cuda.nvrtc.getVersion()
        env["NVRTC"] = f"{major}.{minor}"
        env["driver"] = str(cp.cuda.runtime.driverGetVersion())
    except Exception as e:  # noqa: BLE001
        env["CuPy"] = f"unavailable: {e}"
    env["date (UTC)"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated family names (default: all)")
    parser.add_argument("--no-sanitizer", action="store_true")
    parser.add_argument("--no-large", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--sanitizer-timeout", type=float, default=240.0)
    parser.add_argument("--sanitizer-jobs", type=int, default=9)
    parser.add_argument("--out", default=str(ROOT / "docs" / "nvidia-lane.md"))
    parser.add_argument("--sanitizer-only", action="store_true", help="only the compute-sanitizer runs")
    parser.add_argument("--render", nargs="+", metavar="JSON",
                        help="write the report from earlier runs' JSON results (merged in order); runs nothing")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        return child(opts.child)
    if opts.render:
        report = merge([from_json(json.loads(Path(p).read_text())) for p in opts.render])
        Path(opts.out).write_text(to_markdown(report))
        print(f"wrote {opts.out}: {len(report.failures())} failing of {len(report.checks)}")
        return 0
    if not torch.cuda.is_available():
        print("nvidia_lane: no CUDA device", file=sys.stderr)
        return 2

    wanted = {n for n in opts.families.split(",") if n}
    families = [f for f in FAMILIES if not wanted or f.name in wanted]
    report = LaneReport(environment=environment())
    started = time.perf_counter()
    report.copy_gbps = copy_bandwidth_gbps()
    print(f"copy bandwidth {report.copy_gbps:.0f} GB/s", flush=True)

    for family in families if not opts.sanitizer_only else ():
        t0 = time.perf_counter()
        for dtype in family.dtypes:
            for i, args in enumerate(family.examples(dtype)):
                report.checks.append(check(family, dtype, f"example {i}", to_device(args, "cuda"), True))
            if opts.no_large:
                continue
            for case in large_cases(family.name, dtype, "cuda"):
                result = check(family, dtype, f"large: {case.label}", case.args, own_dtype_too=False)
                report.checks.append(result)
                if result.ok and not opts.no_timing and dtype in TIMED_DTYPES:
                    try:
                        t = time_case(family, dtype, case)
                        if t is not None:
                            report.timings.append(t)
                    except Exception as e:  # noqa: BLE001
                        report.not_run.append(f"timing {family.name} {dtype} {case.label}: {type(e).__name__}: {e}")
                del case
                torch.cuda.empty_cache()
        bad = [c for c in report.checks if c.family == family.name and not c.ok]
        print(f"{family.name}: {len(bad)} failing, {time.perf_counter() - t0:.1f} s", flush=True)
        for c in bad[:5]:
            print(f"   {c.dtype} {c.case}: {c.detail[:300]}", flush=True)

    if not opts.no_sanitizer:
        sources = sorted({f.source for f in families})
        jobs = [(s, tool) for tool in SANITIZER_TOOLS for s in sources]
        with concurrent.futures.ThreadPoolExecutor(max_workers=opts.sanitizer_jobs) as pool:
            futures = [pool.submit(sanitize, s, tool, opts.sanitizer_timeout) for s, tool in jobs]
            futures += [pool.submit(sanitize, f"control:{name}", tool, 90.0, True)
                        for name, (tool, *_) in CONTROLS.items()]
            for fut in futures:
                run = fut.result()
                report.sanitizer.append(run)
                print(f"sanitizer {run.tool} {run.source}: {run.ok} {run.summary} ({run.seconds:.0f} s)", flush=True)
    else:
        report.not_run.append("compute-sanitizer (--no-sanitizer)")

    report.environment["lane wall time"] = f"{time.perf_counter() - started:.0f} s"
    text = to_markdown(report)
    Path(opts.out).write_text(text)
    Path(opts.out).with_suffix(".json").write_text(json.dumps(to_json(report), indent=1))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "nvidia-lane.md").write_text(text)
        Path(os.environ["OUT"], "nvidia-lane.json").write_text(json.dumps(to_json(report), indent=1))
    print(f"wrote {opts.out}: {len(report.failures())} failing of {len(report.checks)}", flush=True)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
