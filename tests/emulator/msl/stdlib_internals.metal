// Conformance: what Apple's <metal_stdlib> exposes beyond the documented functions and real headers (MLX's
// bf16_math.h, utils.h, atomic.h, gemv.h, logging.h) use: METAL_FUNC, the fast-math macros, the __metal_*
// intrinsics, the internal _disjunction trait, uniform<T>, os_log, remove_addrspace_t, thread_scope and
// atomic_thread_fence, fixed-width integer typedefs, make_filled_simdgroup_matrix<T, 8>.
#include <metal_stdlib>
#include <metal_logging>
using namespace metal;

#pragma METAL internals : enable
template <typename T>
constexpr constant bool is_wide = _disjunction<is_same<T, long>, is_same<T, ulong>, is_same<T, float>>::value;
#pragma METAL internals : disable

// The intrinsic form MLX's bf16_math.h writes: fast-math flag last, or left out (fma).
METAL_FUNC float via_intrinsics(float x, float y) {
  return __metal_exp(x, __METAL_MAYBE_FAST_MATH__) + __metal_fmax(x, y, __METAL_PRECISE_MATH__) +
         __metal_fma(x, y, 1.0f) + __metal_log2(fabs(y) + 1.0f, __METAL_FAST_MATH__);
}

constant os_log logger("mpskernels", "conformance");

// out[8 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void stdlib_internals(const device float* xs [[buffer(0)]], const device float* ys [[buffer(1)]],
                             device float* out [[buffer(2)]], uint gid [[thread_position_in_grid]],
                             uint lane [[thread_index_in_simdgroup]]) {
  const float x = xs[gid], y = ys[gid];
  device float* o = out + 8 * gid;
  o[0] = via_intrinsics(x, y);
  o[1] = __metal_simd_sum(x);
  o[2] = float(is_wide<float>) + 2.0f * float(is_wide<int>) + 4.0f * float(is_same_v<remove_addrspace_t<float>, float>);
  const uniform<int> n = make_uniform(int(gid) + 3);
  const uniform<int> half_n = n / 2;
  o[3] = float(half_n) + float(n < 5);
  logger.log_debug("thread %u", gid);
  int64_t wide = int64_t(gid) << 40;
  uint8_t small = uint8_t(250 + gid);  // wraps
  int16_t mid = int16_t(-gid);
  o[4] = float(wide >> 40) + float(small) + float(mid);
  atomic_thread_fence(mem_flags::mem_device, memory_order_seq_cst, thread_scope_device);
  o[5] = float(__metal_get_simdgroup_size(ushort())) + float(__metal_simd_shuffle_down(lane, 1));
  simdgroup_matrix<float, 8, 8> m = make_filled_simdgroup_matrix<float, 8>(x);
  o[6] = m.thread_elements()[0] + m.thread_elements()[1];
  o[7] = __metal_simd_prefix_exclusive_sum(1.0f) + __metal_nextafter(1.0f, 2.0f) - 1.0f;
}
