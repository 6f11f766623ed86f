"""The emulator's Python API: compiling and caching, argument binding, errors that name the kernel."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mpskernels.emulator import DispatchError, KernelExecutionError, MSLCompileError, compile_source

SOURCE = """
#include <metal_stdlib>
using namespace metal;

constant bool add_bias [[function_constant(0)]];

template <typename T>
[[kernel]] void axpy(const device T* x [[buffer(0)]], device T* y [[buffer(1)]],
                     constant T& alpha [[buffer(2)]], constant uint& n [[buffer(3)]],
                     const device T* bias [[buffer(4), function_constant(add_bias)]],
                     uint i [[thread_position_in_grid]]) {
  if (i >= n) return;
  T v = alpha * x[i] + y[i];
  if (add_bias) v += bias[i];
  y[i] = v;
}
template [[host_name("axpy_float")]] [[kernel]] decltype(axpy<float>) axpy<float>;
template [[host_name("axpy_half")]] [[kernel]] decltype(axpy<half>) axpy<half>;

struct Acc {
  float v;
  float get() const thread { return v; }
  float get() const device { return v; }
  void add(float x) thread { v += x; }
};

kernel void merged_members(device Acc* accs [[buffer(0)]], device float* out [[buffer(1)]],
                           uint i [[thread_position_in_grid]]) {
  Acc local = accs[i];
  local.add(1.0f);
  out[i] = local.get() + accs[i].get();
}

kernel void group_sum(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                      threadgroup float* scratch [[threadgroup(0)]],
                      uint tid [[thread_index_in_threadgroup]], uint n [[threads_per_threadgroup]],
                      uint gid [[threadgroup_position_in_grid]]) {
  scratch[tid] = x[gid * n + tid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    float s = 0.0f;
    for (uint k = 0; k < n; k++) s += scratch[k];
    out[gid] = s;
  }
}
"""


@pytest.fixture(scope="module")
def lib():
    return compile_source(SOURCE, name="api.metal")


def test_listing_kernels_roles_and_constants(lib):
    assert set(lib.kernels) == {"axpy_float", "axpy_half", "merged_members", "group_sum"}
    axpy = lib.kernels["axpy_half"]
    assert [(p.name, p.role) for p in axpy.params] == [
        ("x", "buffer"), ("y", "buffer"), ("alpha", "buffer"), ("n", "buffer"), ("bias", "buffer"), ("i", "builtin"),
    ]  # fmt: skip
    assert axpy.params[4].condition == "add_bias"
    assert not axpy.uses_fibers and lib.kernels["group_sum"].uses_fibers
    assert lib.function_constants["add_bias"].index == 0


@pytest.mark.parametrize("dtype, name", [(torch.float32, "axpy_float"), (torch.float16, "axpy_half")])
@pytest.mark.parametrize("with_bias", [False, True])
def test_scalars_are_packed_by_the_instantiated_type(lib, dtype, name, with_bias):
    n = 37
    x, y0, bias = (torch.randn(n).to(dtype) for _ in range(3))
    y = y0.clone()
    lib.dispatch(name, x, y, 0.5, n, bias if with_bias else None, threads=64, group_size=32,
                 constants={"add_bias": with_bias})
    expected = 0.5 * x.double() + y0.double() + (bias.double() if with_bias else 0)
    tol = 1e-6 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(y.double(), expected, rtol=tol, atol=tol)


def test_function_constants_by_index_and_compile_shader_call_style(lib):
    x, y, bias = torch.ones(4), torch.zeros(4), torch.full((4,), 10.0)
    lib.axpy_float(x, y, 2.0, 4, bias, threads=4, group_size=4, constants={0: True})
    assert y.tolist() == [12.0] * 4


SHADOWED_CONSTANT = """
#include <metal_stdlib>
using namespace metal;
constant int blocks [[function_constant(0)]];
[[kernel]] void uses_constant(device int* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = blocks;
}
[[kernel]] void shadows_constant(device int* out [[buffer(0)]], constant int& blocks [[buffer(1)]],
                                 uint i [[thread_position_in_grid]]) {
  out[i] = blocks;  // the parameter, not the function constant
}
"""


def test_a_parameter_shadowing_a_function_constant_needs_no_value():
    lib = compile_source(SHADOWED_CONSTANT, name="shadow.metal")
    out = torch.zeros(2, dtype=torch.int32)
    lib.shadows_constant(out, 7, threads=2, group_size=2)
    assert out.tolist() == [7, 7]
    with pytest.raises(DispatchError, match="uses function constant"):
        lib.uses_constant(out, threads=2, group_size=2)
    lib.uses_constant(out, threads=2, group_size=2, constants={"blocks": 3})
    assert out.tolist() == [3, 3]


def test_member_functions_overloaded_by_address_space_run(lib):
    accs = np.array([1.5, -2.0, 4.0], dtype=np.float32)
    out = torch.full((3,), float("nan"))
    lib.merged_members(accs, out, threads=3, group_size=3)
    assert out.tolist() == [4.0, -3.0, 9.0]


def test_threadgroup_arguments_need_a_size(lib):
    x, out = torch.arange(12.0), torch.empty(3)
    lib.group_sum(x, out, threads=12, group_size=4, threadgroup_memory={0: 16})
    assert out.tolist() == [6.0, 22.0, 38.0]
    with pytest.raises(DispatchError, match=r"group_sum.*threadgroup_memory"):
        lib.group_sum(x, out, threads=12, group_size=4)
    with pytest.raises(DispatchError, match="multiples of 16"):
        lib.group_sum(x, out, threads=12, group_size=4, threadgroup_memory={0: 12})


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4, dtype=torch.float16), 1.0, 4,
                                  threads=4, group_size=4, constants={"add_bias": False}),
         r"axpy_float.*buffer\(1\) 'y' expects float elements of 4 bytes, got a torch.float16"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, threads=4, group_size=4,
                                  constants={"add_bias": False}),
         r"axpy_float.*\[\[buffer\(3\)\]\] 'n'.*not given"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, 4, threads=4, group_size=4),
         r"axpy_float.*add_bias"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, 4, None, 7, threads=4,
                                  group_size=4, constants={"add_bias": False}),
         r"no \[\[buffer\(5\)\]\]"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, -1, threads=4, group_size=4,
                                  constants={"add_bias": False}),
         r"'n'.*does not fit"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, 4, threads=4, group_size=1025,
                                  constants={"add_bias": False}),
         "exceeds its limit of 1024"),
        (lambda lib: lib.dispatch("nope", threads=1, group_size=1), "has no kernel 'nope'"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), torch.ones(4), 1.0, 4, threads=4, group_size=4,
                                  constants={"no_such": 1}),
         "no function constant 'no_such'"),
        (lambda lib: lib.dispatch("axpy_float", torch.ones(4), object(), 1.0, 4, threads=4, group_size=4,
                                  constants={"add_bias": False}),
         "cannot pass object"),
    ],
    ids=["dtype", "missing", "constant", "extra", "range", "group", "kernel", "unknown-constant", "type"],
)
def test_bad_arguments_raise_errors_naming_the_kernel(lib, call, message):
    with pytest.raises(DispatchError, match=message):
        call(lib)


def test_an_empty_grid_runs_nothing(lib):
    y = torch.ones(2)
    lib.axpy_float(torch.ones(2), y, 1.0, 2, threads=0, group_size=32, constants={"add_bias": False})
    assert y.tolist() == [1.0, 1.0]


def test_compile_errors_point_at_the_metal_line():
    source = "#include <metal_stdlib>\nusing namespace metal;\nkernel void k(device float* y [[buffer(0)]]) {\n" \
             "  y[0] = undeclared_name;\n}\n"
    with pytest.raises(MSLCompileError) as e:
        compile_source(source, name="broken.metal")
    assert "broken.metal:4" in str(e.value)
    assert "undeclared_name" in str(e.value)
    assert e.value.diagnostics[0].file == "broken.metal"


def test_libraries_are_cached_on_disk_by_content(tmp_path):
    env = {**os.environ, "MPSKERNELS_CACHE_DIR": str(tmp_path)}
    script = (
        "import time; from mpskernels.emulator import compile_source; t = time.perf_counter(); "
        "lib = compile_source(open('src.metal').read(), name='c.metal'); lib.specialize({'add_bias': True}); "
        "print(time.perf_counter() - t)"
    )
    (tmp_path / "src.metal").write_text(SOURCE.split("struct Acc")[0])
    run = lambda: subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, check=True)
    run()
    cached = list(tmp_path.glob("*.so"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    run()
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("*.so")] == [mtime]  # reused, not rebuilt


def test_portable_ucontext_fibers_give_the_same_results(tmp_path):
    env = {**os.environ, "MPSKERNELS_EMULATOR_CXXFLAGS": "-DMTL_FIBER_UCONTEXT", "MPSKERNELS_CACHE_DIR": str(tmp_path)}
    script = (
        "import torch; from mpskernels.emulator import compile_source; import sys\n"
        "lib = compile_source(sys.stdin.read(), name='u.metal')\n"
        "x = torch.arange(64.0); out = torch.empty(4)\n"
        "lib.group_sum(x, out, threads=64, group_size=16, threadgroup_memory={0: 64})\n"
        "print(lib.fiber_implementation(), out.tolist())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=SOURCE, env=env, capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split(" ", 1)[0] == "ucontext"
    assert proc.stdout.split(" ", 1)[1].strip() == str([120.0, 376.0, 632.0, 888.0])


def test_kernel_errors_do_not_kill_the_process_or_leak_into_the_next_dispatch(lib):
    source = """
    #include <metal_stdlib>
    using namespace metal;
    kernel void bad(device float* y [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
      if (tid < 3) { threadgroup_barrier(mem_flags::mem_threadgroup); }
      else { threadgroup_barrier(mem_flags::mem_device); }
      y[tid] = 1.0f;
    }
    """
    bad = compile_source(source, name="deadlock.metal")
    y = torch.zeros(8)
    for _ in range(2):
        with pytest.raises(KernelExecutionError, match=r"deadlock\.metal:5.*'bad'.*barrier"):
            bad.bad(y, threads=8, group_size=8)
    x, out = torch.arange(12.0), torch.empty(3)
    lib.group_sum(x, out, threads=12, group_size=4, threadgroup_memory={0: 16})
    assert out.tolist() == [6.0, 22.0, 38.0]


def test_a_thread_that_overflows_its_stack_is_reported(tmp_path):
    """Overflowing into the stack's canary is an error naming the kernel and the knob, not a crash."""
    source = """
    #include <metal_stdlib>
    using namespace metal;
    kernel void deep(device float* y [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
      float local[5000];  // 20 KB: fits 64 KiB stacks, not 16 KiB ones (whatever the compiler's frame sizes)
      for (int i = 0; i < 5000; i++) local[i] = float(i + tid);
      threadgroup_barrier(mem_flags::mem_threadgroup);
      y[tid] = local[3999 - tid + int(y[tid])];  // index unknown at compile time: clang++ keeps the array
    }
    """
    code = (
        "import sys, torch\n"
        "from mpskernels.emulator import compile_source, KernelExecutionError\n"
        "lib = compile_source(sys.stdin.read(), name='deep.metal')\n"
        "y = torch.zeros(4)\n"
        "try:\n"
        "    lib.deep(y, threads=4, group_size=4)\n"
        "    print('ran', y.tolist())\n"
        "except KernelExecutionError as e:\n"
        "    print('error', e)\n"
    )
    env = {**os.environ, "MPSKERNELS_CACHE_DIR": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-c", code], input=source, env=env, capture_output=True, text=True)
    assert ok.stdout.startswith("ran [3999.0, 3999.0, 3999.0, 3999.0]"), ok.stdout + ok.stderr
    env["MPSKERNELS_EMULATOR_STACK_KB"] = "16"
    small = subprocess.run([sys.executable, "-c", code], input=source, env=env, capture_output=True, text=True)
    assert small.returncode == 0, small.stderr  # no crash
    assert small.stdout.startswith("error") and "stack overflow" in small.stdout and "'deep'" in small.stdout
    assert "MPSKERNELS_EMULATOR_STACK_KB" in small.stdout


BOUNDS_SOURCE = """
#include <metal_stdlib>
using namespace metal;
kernel void shift_read(const device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                       uint i [[thread_position_in_grid]]) {
  y[i] = x[i + 1];  // reads one past the end for the last thread
}
kernel void tail_write(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]]) {
  threadgroup_barrier(mem_flags::mem_none);
  y[i + 2] = 1.0f;  // writes past the end (fiber path)
}
kernel void in_bounds(const device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                      uint i [[thread_position_in_grid]]) {
  y[i] = x[i] * 2.0f;
}
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_bounds_checking_reports_the_buffer_and_offset(workers):
    lib = compile_source(BOUNDS_SOURCE, name="bounds.metal")
    x, y = torch.arange(10.0), torch.zeros(10)
    lib.shift_read(x, y, threads=10, group_size=4, bounds_check=False, workers=workers)  # unchecked: no error
    with pytest.raises(KernelExecutionError, match=r"'shift_read'.*out-of-bounds access to \[\[buffer\(0\)\]\] at "
                                                   r"byte offset 40; the buffer holds 40 bytes"):
        lib.shift_read(x, y, threads=10, group_size=4, bounds_check=True, workers=workers)
    with pytest.raises(KernelExecutionError, match=r"'tail_write'.*buffer\(0\).*byte offset 4[04]"):
        lib.tail_write(torch.zeros(10), threads=10, group_size=4, bounds_check=True, workers=workers)
    # Views: the extent is the view's, not its storage's.
    base = torch.arange(20.0)
    with pytest.raises(KernelExecutionError, match="buffer holds 40 bytes"):
        lib.shift_read(base[5:15], torch.zeros(10), threads=10, group_size=4, bounds_check=True, workers=workers)
    out = torch.zeros(10)
    lib.in_bounds(base[5:15], out, threads=10, group_size=4, bounds_check=True, workers=workers)
    assert out.tolist() == [2.0 * v for v in range(5, 15)]  # results come back from the guarded copies
