// What Apple's <metal_stdlib> exposes beyond its documented functions and real headers call directly: the
// __metal_* intrinsics its math is built on (MLX's bf16_math.h defines the bfloat math through them). The last
// argument picks fast (true) or precise (false) math, as in Apple's headers.
#pragma once

#include "simd.cuh"

#define MTL_INTRINSIC_1(name)                                                                        \
  template <class X> inline auto __metal_##name(X x, bool fast_math = true) -> decltype(metal::name(x)) { \
    return fast_math ? metal::fast::name(x) : metal::precise::name(x);                              \
  }
#define MTL_INTRINSIC_2(name)                                                                        \
  template <class X, class Y>                                                                        \
  inline auto __metal_##name(X x, Y y, bool fast_math = true) -> decltype(metal::name(x, y)) {       \
    return fast_math ? metal::fast::name(x, y) : metal::precise::name(x, y);                        \
  }
#define MTL_INTRINSIC_3(name)                                                                        \
  template <class X, class Y, class Z>                                                               \
  inline auto __metal_##name(X x, Y y, Z z, bool fast_math = true) -> decltype(metal::name(x, y, z)) { \
    return fast_math ? metal::fast::name(x, y, z) : metal::precise::name(x, y, z);                  \
  }
#define MTL_INTRINSIC_FROM_SET(name, p, f) MTL_INTRINSIC_1(name)
#define MTL_INTRINSIC_FROM_SET2(name, p, f) MTL_INTRINSIC_2(name)
#define MTL_INTRINSIC_FROM_SET3(name, p, f) MTL_INTRINSIC_3(name)
MTL_FAST_SET(MTL_INTRINSIC_FROM_SET)
MTL_FAST_SET2(MTL_INTRINSIC_FROM_SET2)
MTL_FAST_SET3(MTL_INTRINSIC_FROM_SET3)
#undef MTL_INTRINSIC_FROM_SET
#undef MTL_INTRINSIC_FROM_SET2
#undef MTL_INTRINSIC_FROM_SET3
#undef MTL_INTRINSIC_1
#undef MTL_INTRINSIC_2
#undef MTL_INTRINSIC_3

// The ones without a fast variant (fma takes no flag in MLX's use; the flag is accepted and ignored).
template <class X, class Y, class Z>
inline auto __metal_fma(X x, Y y, Z z, bool = true) -> decltype(metal::fma(x, y, z)) { return metal::fma(x, y, z); }
template <class X, class Y>
inline auto __metal_nextafter(X x, Y y) -> decltype(metal::nextafter(x, y)) { return metal::nextafter(x, y); }
template <class X, class Y>
inline auto __metal_ldexp(X x, Y k, bool = true) -> decltype(metal::ldexp(x, int(k))) { return metal::ldexp(x, int(k)); }
template <class X, class E> inline X __metal_frexp(X x, E* exponent) {
  int e;
  const X r = metal::frexp(x, e);
  *exponent = E(e);
  return r;
}

// SIMD-group intrinsics behind metal::simd_*.
#define MTL_SIMD_INTRINSIC_1(name) \
  template <class T> inline T __metal_##name(T x) { return metal::name(x); }
#define MTL_SIMD_INTRINSIC_2(name) \
  template <class T, class I> inline T __metal_##name(T x, I n) { return metal::name(x, n); }
MTL_SIMD_INTRINSIC_1(simd_sum) MTL_SIMD_INTRINSIC_1(simd_product) MTL_SIMD_INTRINSIC_1(simd_min)
MTL_SIMD_INTRINSIC_1(simd_max) MTL_SIMD_INTRINSIC_1(simd_broadcast_first)
MTL_SIMD_INTRINSIC_1(simd_prefix_inclusive_sum) MTL_SIMD_INTRINSIC_1(simd_prefix_exclusive_sum)
MTL_SIMD_INTRINSIC_1(simd_prefix_inclusive_product) MTL_SIMD_INTRINSIC_1(simd_prefix_exclusive_product)
MTL_SIMD_INTRINSIC_2(simd_shuffle) MTL_SIMD_INTRINSIC_2(simd_broadcast) MTL_SIMD_INTRINSIC_2(simd_shuffle_down)
MTL_SIMD_INTRINSIC_2(simd_shuffle_up) MTL_SIMD_INTRINSIC_2(simd_shuffle_xor)
MTL_SIMD_INTRINSIC_2(simd_shuffle_rotate_down) MTL_SIMD_INTRINSIC_2(simd_shuffle_rotate_up)
#undef MTL_SIMD_INTRINSIC_1
#undef MTL_SIMD_INTRINSIC_2

// Bitwise SIMD reductions of floating-point values: MLX's bf16_math.h defines simd_xor(bfloat) through
// __metal_simd_xor(float) in a plain (always compiled) function, so the float form must compile; what Apple's GPU
// computes for it is not documented, so reaching it stops the kernel (a trap) instead of guessing.
#define MTL_SIMD_BITWISE_INTRINSIC(name)                                                                        \
  template <class T> inline T __metal_##name(T x) {                                                             \
    if constexpr (metal::is_floating_point_v<T>) {                                                              \
      printf("mpskernels: " #name " on a floating-point value: its result on Apple GPUs is undocumented\n");    \
      __trap();                                                                                                 \
      return x;                                                                                                 \
    } else {                                                                                                    \
      return metal::name(x);                                                                                    \
    }                                                                                                           \
  }
MTL_SIMD_BITWISE_INTRINSIC(simd_and) MTL_SIMD_BITWISE_INTRINSIC(simd_or) MTL_SIMD_BITWISE_INTRINSIC(simd_xor)
#undef MTL_SIMD_BITWISE_INTRINSIC

template <class T, class I, class M> inline T __metal_simd_shuffle_and_fill_down(T data, T fill, I delta, M modulo) {
  return metal::simd_shuffle_and_fill_down(data, fill, delta, modulo);
}
template <class T, class I, class M> inline T __metal_simd_shuffle_and_fill_up(T data, T fill, I delta, M modulo) {
  return metal::simd_shuffle_and_fill_up(data, fill, delta, modulo);
}
// The SIMD-group width, typed like its argument (Apple's headers pass ushort()).
template <class T> inline T __metal_get_simdgroup_size(T) { return T(32); }

namespace metal {
// <metal_logging>: on a Mac the messages go to the host's log. As in the emulator, the calls are accepted and have
// no effect on what a kernel computes (the lane has no log stream either).
struct os_log {
  constexpr os_log() = default;
  constexpr os_log(const char*, const char*) {}
#define MTL_OS_LOG_LEVEL(level) \
  template <class... A> void level(const char*, A...) const {}
  MTL_OS_LOG_LEVEL(log) MTL_OS_LOG_LEVEL(log_debug) MTL_OS_LOG_LEVEL(log_info) MTL_OS_LOG_LEVEL(log_default)
  MTL_OS_LOG_LEVEL(log_error) MTL_OS_LOG_LEVEL(log_fault)
#undef MTL_OS_LOG_LEVEL
};

// Memory orders and scopes of <metal_atomic>, and atomic_thread_fence: a fence at least as strong as asked for
// (CUDA's fence of the scope's level; sequentially consistent).
enum memory_order { memory_order_relaxed, memory_order_acquire, memory_order_release, memory_order_acq_rel,
                    memory_order_seq_cst };
enum class thread_scope : int { thread = 0, threadgroup = 1, device = 2, simdgroup = 4 };
constexpr thread_scope thread_scope_thread = thread_scope::thread;
constexpr thread_scope thread_scope_threadgroup = thread_scope::threadgroup;
constexpr thread_scope thread_scope_device = thread_scope::device;
constexpr thread_scope thread_scope_simdgroup = thread_scope::simdgroup;
inline void atomic_thread_fence(mem_flags, memory_order, thread_scope scope = thread_scope_device) {
  if (scope == thread_scope_device) __threadfence();
  else __threadfence_block();
}

// uniform<T>: a value the compiler may assume equal in every thread; it behaves as a T (converts both ways).
template <class T> struct uniform {
  T value;
  uniform() = default;
  constexpr uniform(T v) : value(v) {}
  constexpr operator T() const { return value; }
};
template <class T> constexpr uniform<T> make_uniform(T v) { return uniform<T>(v); }
}  // namespace metal
