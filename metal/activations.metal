// Element-wise activations and gated linear units.
//
//   unary        out[i] = act(x[i])                          silu, gelu, gelu (tanh), mish, hardswish
//   gated        out[i] = act(a[i]) * b[i]                   swiglu (act = silu), geglu (act = gelu)
//   gated_split  out[r, j] = act(x[r, j]) * x[r, H + j]      the same on one tensor whose last dimension (2H)
//                                                            holds a then b, as in `a, b = x.chunk(2, -1)`
//
// Bytes moved per output element (E = sizeof(T)): unary one read + one write (2E); gated and gated_split two
// reads + one write (3E). That is the minimum: every input element is read once and every output element written
// once. Each thread moves one 16-byte chunk per tensor (see "kernels" below): 16 bytes is the widest single
// access, and one chunk per thread over a grid of millions of threads already keeps the memory system full (the
// fp32 kernels reach 94-101% of copy bandwidth on the lane), so the kernels do not loop and need no unrolling.
// Everything is computed in fp32 (a 16-bit element converted once on load) and rounded once on store.
//
// Math per element. Memory-bound only while the math per element fits in the time its bytes take; 16-bit types
// bring twice the elements per byte, so each functor has a `Low` form that 16-bit outputs use (ForOutput below).
// GELU (erf form) was compute-bound: an erf in three regimes, with branches that diverge within a SIMD group on
// ordinary data (|x| < 1.24 takes the series, the rest the erfc tail), so every group paid for both: ~12 ops of
// series + select, ~30 ops of tail (precise division, degree-9 polynomial, hi/lo square) and a precise exp. Now
// one branch-free formula for the normal tail Phi(-|x|) (below) and a select:
//   fp32 outputs   ~22 ops + a precise exp: clamp, fma, reciprocal + Newton step (3), degree-8 polynomial (8),
//                  hi/lo square (2), correction (2), 2 multiplies, select + subtract, multiply
//   16-bit         ~14 ops + a fast exp: clamp, fma, fast reciprocal, degree-5 polynomial (5), 2 multiplies for
//                  the exponent, 2 for the product, select + subtract, multiply
// SiLU, sigmoid, GELU (tanh) and Mish for 16-bit outputs use fast::exp and fast::divide (a reciprocal and a
// multiply) instead of the precise ones (a range reduction and polynomial; a division with special-case
// handling). Mish and HardSwish select instead of branching, and HardSwish multiplies by 1/6.
//
// Accuracy, measured on the emulator (precise arithmetic for fast::) over a dense sweep against float64
// (tests/kernel_families/test_activations.py):
//   Phi(-|x|), fp32 form    relative error <= 3.7e-7 wherever Phi is a normal fp32 number (|x| < 13.0), 0 where
//                           it underflows; GELU (fp32) <= 3.8e-7 relative for |x| < 13, 8.1e-7 where Phi is
//                           subnormal: 12x under fp32's tolerance (1e-5 relative). The negative tail keeps this
//                           relative accuracy: no 1 + erf(x) is ever formed.
//   Phi(-|x|), 16-bit form  relative error <= 2.9e-5, and GELU's the same; MSL's fast-math bounds add at most
//                           1.3e-5 (exp within 3 + floor(2 |arg|) ulp, arg >= -110; divide within 2.5 ulp): under
//                           5e-5 in all, against fp16's 1e-3 (rounding to fp16 takes 4.9e-4 of it) and bf16's 1e-2.
// GELU's tanh form is evaluated as x * sigmoid(2u) (= 0.5 x (1 + tanh u)) and Mish as x * n / (n + 2) with
// n = e^x (e^x + 2) (= x tanh(softplus x)): the same functions, without cancellation for negative x.
//
// Before (the anchor lane on an NVIDIA H200, not an Apple GPU: % of the lane's measured copy bandwidth, 4246 GB/s,
// for the minimum bytes; 4096 x 11008, bf16 / fp16 / fp32): silu 78 / 87 / 97; gelu (erf) 40 / 44 / 76 (bf16
// 107 us, torch's native op 60 us); gelu tanh 67 / 78 / 96; mish 65 / 76 / 94; hardswish 69 / 80 / 94; geglu
// 56 / 60 / 98; geglu_split (4096 x 22016) 51 / 54 / 92; swiglu 89 / 93 / 101; swiglu_split 79 / 85 / 98. Part of
// the 16-bit gap is the lane's own (bfloat <-> float takes a few integer ops there; Apple GPUs convert natively).
// Now (H100 lane, full run at f11f7ae, docs/anchor-lane.md): 96-101% of copy for every activation and gated unit
// in every dtype at 4096 x 11008 (4096 x 22016 split).
//
// The instantiations are skipped when MPSK_ACTIVATION_FUNCTIONS_ONLY is defined: metal/epilogue.metal includes
// this file for the activation functors.
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

// ---- the standard normal's lower tail, Phi(-a) = erfc(a / sqrt 2) / 2 for a = |x| ----
// One formula over the whole range, so a SIMD group never diverges: Phi(-a) = exp(-a^2 / 2) * s * R(s) with
// s = 1 / (2 + a / sqrt 2) in (0, 1/2], R a polynomial fitted (Lawson's iteration to the minimax) for least
// relative error on a / sqrt 2 in [0, 10.5] (x to -14.85, where Phi underflows fp32). Taking a^2 from x itself,
// not from x / sqrt 2, keeps the rounding of that product out of the exponent, where it would grow with a^2.

constant constexpr float NORMAL_TAIL_ZERO_FROM = 14.85f;  // Phi(-a) is below fp32's smallest subnormal from 14.5

// a = |x| clamped to NORMAL_TAIL_ZERO_FROM (NaN kept): keeps a * a and fma(a, a, -a * a) finite.
inline float normal_tail_argument(float x) {
  const float a = fabs(x);
  return a > NORMAL_TAIL_ZERO_FROM ? NORMAL_TAIL_ZERO_FROM : a;
}

// fp32 outputs: R of degree 8 (relative error 4.3e-8 in exact arithmetic), s to within an ulp, exp(-a^2 / 2)
// with the rounding of a^2 corrected to first order.
inline float normal_tail_f32(float a) {
  const float d = fma(a, M_SQRT1_2_F, 2.0f);  // in [2, 12.5]: no special cases for the division
  float s = metal::fast::divide(1.0f, d);
  s = fma(s, fma(-d, s, 1.0f), s);  // one Newton step
  float r = -15.153486f;
  r = fma(r, s, 36.503387f);
  r = fma(r, s, -31.261482f);
  r = fma(r, s, 8.944396f);
  r = fma(r, s, -0.4419728f);
  r = fma(r, s, 1.624879f);
  r = fma(r, s, 0.9719865f);
  r = fma(r, s, 0.5647801f);
  r = fma(r, s, 0.28208557f);
  const float hi = a * a;
  const float lo = fma(a, a, -hi);  // a^2 = hi + lo exactly
  const float e = metal::precise::exp(-0.5f * hi);
  return fma(-0.5f * e, lo, e) * (s * r);  // exp(-hi / 2 - lo / 2) to first order in lo
}

// 16-bit outputs: R of degree 5 (relative error 2.7e-5), fast reciprocal and exp.
inline float normal_tail_f16(float a) {
  const float s = metal::fast::divide(1.0f, fma(a, M_SQRT1_2_F, 2.0f));
  float r = -1.8872507f;
  r = fma(r, s, -0.10402591f);
  r = fma(r, s, 2.4040701f);
  r = fma(r, s, 0.7624212f);
  r = fma(r, s, 0.5860045f);
  r = fma(r, s, 0.28133515f);
  return metal::fast::exp(-0.5f * a * a) * (s * r);
}

// ---- activation functors: static float apply(float), and Low, the form a kernel applies for 16-bit outputs ----
// Low uses fast::exp and fast::divide where the fp32 form uses precise ones (MSL's fast-math bounds: exp within
// 3 + floor(2 |x|) ulp, at most 1.1e-5 relative over the arguments reached here; divide within 2.5 ulp), and
// GELU's Low a shorter polynomial: all far below fp16's tolerance (1e-3 relative, of which rounding to fp16 takes
// 4.9e-4) and bf16's (1e-2). Functors without a cheaper form are their own Low.

struct Identity {
  using Low = Identity;
  static float apply(float x) { return x; }
};

struct Relu {
  using Low = Relu;
  static float apply(float x) { return x < 0.0f ? 0.0f : x; }  // NaN passes through, as in torch
};

struct Relu6 {
  using Low = Relu6;
  static float apply(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }
};

struct SigmoidLow {
  using Low = SigmoidLow;
  static float apply(float x) { return metal::fast::divide(1.0f, 1.0f + metal::fast::exp(-x)); }
};

struct Sigmoid {
  using Low = SigmoidLow;
  static float apply(float x) { return metal::precise::divide(1.0f, 1.0f + metal::precise::exp(-x)); }
};

struct Tanh {
  using Low = Tanh;
  static float apply(float x) { return metal::precise::tanh(x); }
};

struct SiluLow {
  using Low = SiluLow;
  static float apply(float x) { return metal::fast::divide(x, 1.0f + metal::fast::exp(-x)); }
};

struct Silu {
  using Low = SiluLow;
  static float apply(float x) { return metal::precise::divide(x, 1.0f + metal::precise::exp(-x)); }
};

// x * Phi(x): Phi(x) = 1 - Phi(-x) for x > 0, selected rather than branched on. NaN stays NaN (x > 0 is false).
inline float gelu_from_tail(float x, float lower_tail) {
  return x * (x > 0.0f ? 1.0f - lower_tail : lower_tail);
}

struct GeluLow {
  using Low = GeluLow;
  static float apply(float x) { return gelu_from_tail(x, normal_tail_f16(normal_tail_argument(x))); }
};

struct Gelu {
  using Low = GeluLow;
  static float apply(float x) { return gelu_from_tail(x, normal_tail_f32(normal_tail_argument(x))); }
};

// 0.5 x (1 + tanh(u)), u = sqrt(2 / pi) (x + 0.044715 x^3), written as x * sigmoid(2u).
inline float gelu_tanh_exponent(float x) {
  return -1.5957691216057308f * fma(0.044715f * x, x * x, x);  // -2u; 2 sqrt(2 / pi) = 1.5957691...
}

struct GeluTanhLow {
  using Low = GeluTanhLow;
  static float apply(float x) { return metal::fast::divide(x, 1.0f + metal::fast::exp(gelu_tanh_exponent(x))); }
};

struct GeluTanh {
  using Low = GeluTanhLow;
  static float apply(float x) {
    return metal::precise::divide(x, 1.0f + metal::precise::exp(gelu_tanh_exponent(x)));
  }
};

// x tanh(softplus(x)); tanh(log(1 + e)) with e = exp(x) is n / (n + 2), n = e (e + 2). From x = 20 on the factor
// rounds to 1 (and n overflows past 44): x is selected there, so NaN from inf / inf never reaches the result.
constant constexpr float MISH_IDENTITY_FROM = 20.0f;

struct MishLow {
  using Low = MishLow;
  static float apply(float x) {
    const float e = metal::fast::exp(x);
    const float n = e * (e + 2.0f);
    return x > MISH_IDENTITY_FROM ? x : x * metal::fast::divide(n, n + 2.0f);
  }
};

struct Mish {
  using Low = MishLow;
  static float apply(float x) {
    const float e = metal::precise::exp(x);
    const float n = e * (e + 2.0f);
    return x > MISH_IDENTITY_FROM ? x : x * metal::precise::divide(n, n + 2.0f);
  }
};

// x * relu6(x + 3) / 6, the division as a multiplication by 1/6 (within 1.5 ulp).
struct HardSwish {
  using Low = HardSwish;
  static float apply(float x) {
    const float r = x + 3.0f;
    const float below = x * 0.0f;  // r < 0: NaN and -inf give NaN, -x gives -0, as in torch
    const float middle = x * r * (1.0f / 6.0f);
    return r >= 6.0f ? x : (r < 0.0f ? below : middle);  // r >= 6: exact, and x * 6 cannot overflow
  }
};

// The functor applied for outputs of type T: Op, or Op::Low for 16-bit outputs.
template <typename Op, typename T>
struct ForOutput {
  using type = Op;
};
template <typename Op>
struct ForOutput<Op, half> {
  using type = typename Op::Low;
};
template <typename Op>
struct ForOutput<Op, bfloat> {
  using type = typename Op::Low;
};

#ifndef MPSK_ACTIVATION_FUNCTIONS_ONLY

// ---- kernels ----
// One 16-byte chunk per thread (metal/chunk_io.h: 4 floats or 8 halves / bfloats): consecutive threads take
// consecutive chunks, so a SIMD group moves one contiguous 512-byte span per access and every access of a whole
// chunk at a 16-byte aligned address is a single 16-byte load or store. Only the tensor's (or the row's) last
// partial chunk, or buffers not 16-byte aligned (a storage offset; a _split row of odd width), go element by
// element with a guard on each. Threadgroups of 256 threads (the host's GROUP): 8 SIMD groups, small enough for
// several to be resident per Apple GPU core, with no threadgroup memory or barriers.

template <typename T, typename Op>
[[kernel]] void unary(
    const device T* x [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant uint& size [[buffer(2)]],
    uint tid [[thread_position_in_grid]]) {
  const bool vec = aligned16(x) && aligned16(out);
  float v[ChunkOf<T>::N];
  load_chunk(x, tid, size, vec, v);
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    v[i] = ForOutput<Op, T>::type::apply(v[i]);
  }
  store_chunk(out, tid, size, vec, v);
}

// act(a) * b over chunk c of n elements.
template <typename T, typename Op>
inline void gated_chunk(const device T* a, const device T* b, device T* out, uint c, uint n) {
  const bool vec = aligned16(a) && aligned16(b) && aligned16(out);
  float va[ChunkOf<T>::N];
  float vb[ChunkOf<T>::N];
  load_chunk(a, c, n, vec, va);
  load_chunk(b, c, n, vec, vb);
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    va[i] = ForOutput<Op, T>::type::apply(va[i]) * vb[i];
  }
  store_chunk(out, c, n, vec, va);
}

template <typename T, typename Op>
[[kernel]] void gated(
    const device T* a [[buffer(0)]],
    const device T* b [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant uint& size [[buffer(3)]],
    uint tid [[thread_position_in_grid]]) {
  gated_chunk<T, Op>(a, b, out, tid, size);
}

// x is (rows, 2 * half), out is (rows, half). Grid: (chunks of half, rows).
template <typename T, typename Op>
[[kernel]] void gated_split(
    const device T* x [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant uint& half_size [[buffer(2)]],
    uint2 tid [[thread_position_in_grid]]) {
  const device T* gate = x + tid.y * (2 * half_size);  // x has fewer than 2^32 elements (the host checks)
  gated_chunk<T, Op>(gate, gate + half_size, out + tid.y * half_size, tid.x, half_size);
}

// Host names: <op>_<dtype>, <op>_<variant>_<dtype> (variant: tanh for GELU's tanh form, split for one input).
#define INSTANTIATE_FOR_TYPES(INSTANTIATE, ...) \
  INSTANTIATE(__VA_ARGS__, float32, float)       \
  INSTANTIATE(__VA_ARGS__, float16, half)        \
  INSTANTIATE(__VA_ARGS__, bfloat16, bfloat)

#define INSTANTIATE_UNARY(op, Op, name, T) \
  template [[host_name(#op "_" #name)]] [[kernel]] decltype(unary<T, Op>) unary<T, Op>;

#define INSTANTIATE_GATED(op, Op, name, T)                                                      \
  template [[host_name(#op "_" #name)]] [[kernel]] decltype(gated<T, Op>) gated<T, Op>;        \
  template [[host_name(#op "_split_" #name)]] [[kernel]] decltype(gated_split<T, Op>)          \
      gated_split<T, Op>;

INSTANTIATE_FOR_TYPES(INSTANTIATE_UNARY, silu, Silu)
INSTANTIATE_FOR_TYPES(INSTANTIATE_UNARY, gelu, Gelu)
INSTANTIATE_FOR_TYPES(INSTANTIATE_UNARY, gelu_tanh, GeluTanh)
INSTANTIATE_FOR_TYPES(INSTANTIATE_UNARY, mish, Mish)
INSTANTIATE_FOR_TYPES(INSTANTIATE_UNARY, hardswish, HardSwish)
INSTANTIATE_FOR_TYPES(INSTANTIATE_GATED, swiglu, Silu)
INSTANTIATE_FOR_TYPES(INSTANTIATE_GATED, geglu, Gelu)
INSTANTIATE_FOR_TYPES(INSTANTIATE_GATED, geglu_tanh, GeluTanh)

#endif  // MPSK_ACTIVATION_FUNCTIONS_ONLY
