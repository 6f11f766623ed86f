// What Apple's <metal_stdlib> exposes beyond the documented functions and real headers use: the __metal_*
// compiler intrinsics its functions are built on (MLX's bf16_math.h calls them directly), the internal
// _disjunction/_conjunction traits, uniform<T>, os_log, thread_scope and atomic_thread_fence.
#pragma once

#include "atomic.h"
#include "math.h"
#include "simd.h"

// ---------------------------------------------------------------------------
// __metal_NAME(x..., bool fast): the intrinsic behind metal::NAME. The last argument chooses fast or precise
// math (MLX leaves it out for fma); the emulator computes the precise result for both (docs/emulator.md,
// "Numerics").
// ---------------------------------------------------------------------------
#define MTL_INTRINSIC_1(name) \
  template <class X> inline auto __metal_##name(X x, bool = false) -> decltype(metal::name(x)) { return metal::name(x); }
#define MTL_INTRINSIC_2(name)                                                              \
  template <class X, class Y>                                                              \
  inline auto __metal_##name(X x, Y y, bool = false) -> decltype(metal::name(x, y)) { return metal::name(x, y); }
#define MTL_INTRINSIC_3(name)                                                              \
  template <class X, class Y, class Z>                                                     \
  inline auto __metal_##name(X x, Y y, Z z, bool = false) -> decltype(metal::name(x, y, z)) {      \
    return metal::name(x, y, z);                                                           \
  }
MTL_INTRINSIC_1(acos) MTL_INTRINSIC_1(acosh) MTL_INTRINSIC_1(asin) MTL_INTRINSIC_1(asinh)
MTL_INTRINSIC_1(atan) MTL_INTRINSIC_1(atanh) MTL_INTRINSIC_1(cbrt) MTL_INTRINSIC_1(ceil)
MTL_INTRINSIC_1(cos) MTL_INTRINSIC_1(cosh) MTL_INTRINSIC_1(cospi) MTL_INTRINSIC_1(exp)
MTL_INTRINSIC_1(exp10) MTL_INTRINSIC_1(exp2) MTL_INTRINSIC_1(fabs) MTL_INTRINSIC_1(floor)
MTL_INTRINSIC_1(fract) MTL_INTRINSIC_1(log) MTL_INTRINSIC_1(log10) MTL_INTRINSIC_1(log2)
MTL_INTRINSIC_1(rint) MTL_INTRINSIC_1(round) MTL_INTRINSIC_1(rsqrt) MTL_INTRINSIC_1(saturate)
MTL_INTRINSIC_1(sin) MTL_INTRINSIC_1(sinh) MTL_INTRINSIC_1(sinpi) MTL_INTRINSIC_1(sqrt)
MTL_INTRINSIC_1(tan) MTL_INTRINSIC_1(tanh) MTL_INTRINSIC_1(tanpi) MTL_INTRINSIC_1(trunc)
MTL_INTRINSIC_2(atan2) MTL_INTRINSIC_2(copysign) MTL_INTRINSIC_2(divide) MTL_INTRINSIC_2(fdim)
MTL_INTRINSIC_2(fmax) MTL_INTRINSIC_2(fmin) MTL_INTRINSIC_2(fmod) MTL_INTRINSIC_2(pow)
MTL_INTRINSIC_2(powr) MTL_INTRINSIC_2(ldexp)
MTL_INTRINSIC_3(fma) MTL_INTRINSIC_3(fmax3) MTL_INTRINSIC_3(fmin3) MTL_INTRINSIC_3(fmedian3)
#undef MTL_INTRINSIC_1
#undef MTL_INTRINSIC_2
#undef MTL_INTRINSIC_3

// The two without a fast-math flag. frexp stores the exponent through a pointer.
template <class X, class Y>
inline auto __metal_nextafter(X x, Y y) -> decltype(metal::nextafter(x, y)) { return metal::nextafter(x, y); }
template <class X, class E>
inline X __metal_frexp(X x, E* exponent) { return metal::frexp(x, *exponent); }

// ---------------------------------------------------------------------------
// SIMD intrinsics: the collective records the caller's line, like metal::simd_* itself.
// ---------------------------------------------------------------------------
#define MTL_SIMD_INTRINSIC_1(name) \
  template <class T> inline T __metal_##name(T x, MTL_CALL_SITE) { return metal::name(x, mtl_file, mtl_line); }
#define MTL_SIMD_INTRINSIC_2(name)                                                         \
  template <class T> inline T __metal_##name(T x, ushort n, MTL_CALL_SITE) {               \
    return metal::name(x, n, mtl_file, mtl_line);                                          \
  }
MTL_SIMD_INTRINSIC_1(simd_sum) MTL_SIMD_INTRINSIC_1(simd_product) MTL_SIMD_INTRINSIC_1(simd_min)
MTL_SIMD_INTRINSIC_1(simd_max) MTL_SIMD_INTRINSIC_1(simd_broadcast_first)
MTL_SIMD_INTRINSIC_1(simd_prefix_inclusive_sum) MTL_SIMD_INTRINSIC_1(simd_prefix_exclusive_sum)
MTL_SIMD_INTRINSIC_1(simd_prefix_inclusive_product) MTL_SIMD_INTRINSIC_1(simd_prefix_exclusive_product)
MTL_SIMD_INTRINSIC_2(simd_shuffle) MTL_SIMD_INTRINSIC_2(simd_broadcast) MTL_SIMD_INTRINSIC_2(simd_shuffle_down)
MTL_SIMD_INTRINSIC_2(simd_shuffle_up) MTL_SIMD_INTRINSIC_2(simd_shuffle_xor)
MTL_SIMD_INTRINSIC_2(simd_shuffle_rotate_down) MTL_SIMD_INTRINSIC_2(simd_shuffle_rotate_up)
#undef MTL_SIMD_INTRINSIC_1

// Bitwise reductions. MLX's bf16_math.h defines simd_xor(bfloat) through __metal_simd_xor(float) in a plain
// (eagerly compiled) function, so the float form must compile; what Apple's GPU computes for it is not
// documented, so calling it is a kernel error at its line instead of a guess.
#define MTL_SIMD_BITWISE_INTRINSIC(name)                                                                  \
  template <class T> inline T __metal_##name(T x, MTL_CALL_SITE) {                                        \
    if constexpr (metal::detail::is_fp_v<metal::detail::elem_t<T>>)                                      \
      ::mtl::fail_at(MTL_SITE, "%s on a floating-point value: its result on Apple GPUs is undocumented, "  \
                     "the emulator does not model it", #name);                                           \
    else                                                                                                  \
      return metal::name(x, mtl_file, mtl_line);                                                          \
  }
MTL_SIMD_BITWISE_INTRINSIC(simd_and) MTL_SIMD_BITWISE_INTRINSIC(simd_or) MTL_SIMD_BITWISE_INTRINSIC(simd_xor)
#undef MTL_SIMD_BITWISE_INTRINSIC
#undef MTL_SIMD_INTRINSIC_2

template <class T>
inline T __metal_simd_shuffle_and_fill_down(T data, T fill, ushort delta, ushort modulo, MTL_CALL_SITE) {
  return metal::simd_shuffle_and_fill_down(data, fill, delta, modulo, mtl_file, mtl_line);
}
template <class T>
inline T __metal_simd_shuffle_and_fill_up(T data, T fill, ushort delta, ushort modulo, MTL_CALL_SITE) {
  return metal::simd_shuffle_and_fill_up(data, fill, delta, modulo, mtl_file, mtl_line);
}
// The argument only selects the return type. Apple GPUs run 32-wide SIMD groups (a partial last group still
// reports 32, as threads_per_simdgroup does).
template <class T> constexpr T __metal_get_simdgroup_size(T) { return T(32); }

namespace metal {

// ---------------------------------------------------------------------------
// Internal traits (visible to code after `#pragma METAL internals : enable`, which MLX uses).
// ---------------------------------------------------------------------------
template <class... B> using _disjunction = std::disjunction<B...>;
template <class... B> using _conjunction = std::conjunction<B...>;
template <class B> using _negation = std::negation<B>;

// Address spaces are erased in the emulator, so removing one is the identity.
template <class T> struct remove_addrspace { using type = T; };
template <class T> using remove_addrspace_t = typename remove_addrspace<T>::type;

// ---------------------------------------------------------------------------
// uniform<T>: a value the compiler may assume equal in every thread. It behaves as a T (converts both ways), so
// arithmetic and comparisons are T's.
// ---------------------------------------------------------------------------
template <class T>
struct uniform {
  T value;
  uniform() = default;
  constexpr uniform(T v) : value(v) {}
  constexpr operator T() const { return value; }
};
template <class T> constexpr uniform<T> make_uniform(T v) { return uniform<T>(v); }

// ---------------------------------------------------------------------------
// os_log (Metal 3.2): messages go to the host's log on a Mac. The emulator has no log stream; the calls are
// accepted and have no effect on what a kernel computes.
// ---------------------------------------------------------------------------
struct os_log {
  constexpr os_log() = default;
  constexpr os_log(const char*, const char*) {}
  template <class... A> void log(const char*, A...) const {}
  template <class... A> void log_debug(const char*, A...) const {}
  template <class... A> void log_info(const char*, A...) const {}
  template <class... A> void log_error(const char*, A...) const {}
  template <class... A> void log_fault(const char*, A...) const {}
};
constexpr os_log os_log_default{};

// ---------------------------------------------------------------------------
// Memory scopes and fences. Lanes of one threadgroup run on one OS thread, threadgroups on several, so a full
// fence orders memory as strongly as any scope asks for.
// ---------------------------------------------------------------------------
enum class thread_scope : int { thread = 0, threadgroup = 1, device = 2, simdgroup = 4 };
constexpr thread_scope thread_scope_thread = thread_scope::thread;
constexpr thread_scope thread_scope_threadgroup = thread_scope::threadgroup;
constexpr thread_scope thread_scope_device = thread_scope::device;
constexpr thread_scope thread_scope_simdgroup = thread_scope::simdgroup;

inline void atomic_thread_fence(mem_flags, memory_order, thread_scope = thread_scope_device) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

}  // namespace metal
