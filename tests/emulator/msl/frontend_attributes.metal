// Conformance: constant expressions in attribute arguments, and [[host_name]] on a kernel definition.
#include <metal_stdlib>
using namespace metal;

#define FC_BASE 10
constant int SLOT_BASE = 1;

constant bool scale_twice [[function_constant(FC_BASE + 1)]];  // index 11
constant int offset_by [[function_constant(FC_BASE * 2 - 5)]];  // index 15

// [[buffer(SLOT_BASE + 1)]]: a program-scope integer constant in an index.
kernel void constant_indices(device float* out [[buffer(0)]],
                             constant float& base [[buffer(SLOT_BASE + 1)]],
                             uint gid [[thread_position_in_grid]]) {
  out[gid] = (base + float(offset_by)) * (scale_twice ? 2.0f : 1.0f);
}

// The limit depends on the template arguments: 2 * 32 = 64 for <2, 32>, 4 * 32 = 128 for <4, 32>.
template <int WM, int SIMD = 32>
[[kernel, max_total_threads_per_threadgroup(WM * SIMD)]] void limited(device float* out [[buffer(0)]],
                                                                     uint gid [[thread_position_in_grid]]) {
  out[gid] = float(WM);
}

template [[host_name("limited_2")]] [[kernel]] decltype(limited<2>) limited<2>;
template [[host_name("limited_4")]] [[kernel]] void limited<4, 32>(device float*, uint);

// A non-template kernel launched under another name.
[[host_name("renamed_fill")]] kernel void fill_impl(device float* out [[buffer(0)]],
                                                   uint gid [[thread_position_in_grid]]) {
  out[gid] = 3.0f;
}

// A function constant spelled the way MLX's STEEL_CONST macro spells it.
static constant constexpr const int steel_style [[function_constant(3)]];

kernel void steel_constant(device int* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = steel_style;
}
