// Element-wise activations and gated linear units.
//
//   unary        out[i] = act(x[i])                          silu, gelu, gelu (tanh), mish, hardswish
//   gated        out[i] = act(a[i]) * b[i]                   swiglu (act = silu), geglu (act = gelu)
//   gated_split  out[r, j] = act(x[r, j]) * x[r, H + j]      the same on one tensor whose last dimension (2H)
//                                                            holds a then b, as in `a, b = x.chunk(2, -1)`
//
// Each thread handles one 16-byte chunk (see "kernels" below) of the flat tensor, or of one row for gated_split,
// whose grid is 2-D: x over a row's halves, y over rows, so no thread divides to find its row. Everything is
// computed in fp32 and rounded once on store.
// Memory traffic per output element (E = sizeof(T)): unary one read + one write (2E); gated and gated_split two
// reads + one write (3E). That is the minimum: every input element is read once and every output element written
// once.
//
// Accuracy. erf is not in the Metal standard library, so this file carries its own fp32 erf and erfc:
//   |x| < 0.875     erf(x) = x + x * P(x^2), P of degree 5 (a weighted least-squares fit that converged to the
//                   minimax, relative error 8.5e-9 in exact arithmetic); the leading 1 is kept out of P so its
//                   rounding is not scaled up.
//   a >= 0.5        erfc(a) = exp(-a^2) * t * Q(t), t = 2 / (2 + a), Q of degree 9 fitted the same way on
//                   [0.5, 10.5] (relative error 2.7e-9); exp(-a^2) splits a^2 = hi + lo with an fma and
//                   corrects exp(-hi) by (1 - lo), so the rounding of a^2 does not grow with a.
// In fp32 this gives erf within 1.6 ulp (1.2e-7 relative) and erfc within 4e-7 relative down to its underflow
// (tests/kernels/test_activations.py sweeps both densely against float64). GELU uses erfc for x <= -1.24 instead
// of 1 + erf(x / sqrt 2), so its negative tail keeps full relative accuracy instead of cancelling.
// GELU's tanh form is evaluated as x * sigmoid(2u) (= 0.5 x (1 + tanh u)) and Mish as x * n / (n + 2) with
// n = e^x (e^x + 2) (= x tanh(softplus x)): the same functions, without cancellation for negative x.
//
// The instantiations are skipped when MPSK_ACTIVATION_FUNCTIONS_ONLY is defined: metal/epilogue.metal includes
// this file for the activation functors.
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

// ---- erf and erfc in fp32 ----

constant constexpr float ERF_SERIES_LIMIT = 0.875f;  // erf by its odd polynomial below this |x|
constant constexpr float ERFC_SERIES_LIMIT = 0.5f;   // erfc as 1 - erf below this a
constant constexpr float ERFC_ZERO_FROM = 10.5f;     // erfc(a) underflows fp32 from about 10.05 on

// erf(x) for |x| < ERF_SERIES_LIMIT.
inline float erf_series(float x) {
  const float t = x * x;
  float p = -6.2032545e-4f;
  p = fma(p, t, 5.0321813e-3f);
  p = fma(p, t, -2.6791463e-2f);
  p = fma(p, t, 1.1282455e-1f);
  p = fma(p, t, -3.761255e-1f);
  p = fma(p, t, 1.2837915e-1f);  // 2 / sqrt(pi) - 1
  return fma(x, p, x);
}

// erfc(a) for a >= ERFC_SERIES_LIMIT (NaN stays NaN; values past ERFC_ZERO_FROM give 0).
inline float erfc_tail(float a) {
  a = a > ERFC_ZERO_FROM ? ERFC_ZERO_FROM : a;  // keeps NaN, keeps inf * inf out of the fma below
  const float t = metal::precise::divide(2.0f, 2.0f + a);
  float q = -3.199266e-2f;
  q = fma(q, t, 7.410276e-2f);
  q = fma(q, t, 4.9014956e-2f);
  q = fma(q, t, -2.565823e-1f);
  q = fma(q, t, 1.4172816e-1f);
  q = fma(q, t, 2.3144437e-2f);
  q = fma(q, t, 1.9171156e-1f);
  q = fma(q, t, 2.4445741e-1f);
  q = fma(q, t, 2.822988e-1f);
  q = fma(q, t, 2.8208733e-1f);
  const float hi = a * a;
  const float lo = fma(a, a, -hi);  // a^2 = hi + lo exactly
  float e = metal::precise::exp(-hi);
  e = fma(-e, lo, e);  // exp(-hi - lo) to first order in lo (|lo| <= 2^-24 hi)
  return e * (t * q);
}

inline float erf_f32(float x) {
  const float a = fabs(x);
  if (a < ERF_SERIES_LIMIT) {
    return erf_series(x);
  }
  return copysign(1.0f - erfc_tail(a), x);
}

inline float erfc_f32(float x) {
  const float a = fabs(x);
  if (a < ERFC_SERIES_LIMIT) {
    return 1.0f - erf_series(x);
  }
  const float tail = erfc_tail(a);
  return x < 0.0f ? 2.0f - tail : tail;
}

// ---- activation functors: static float apply(float) ----

struct Identity {
  static float apply(float x) { return x; }
};

struct Relu {
  static float apply(float x) { return x < 0.0f ? 0.0f : x; }  // NaN passes through, as in torch
};

struct Relu6 {
  static float apply(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }
};

struct Sigmoid {
  static float apply(float x) { return metal::precise::divide(1.0f, 1.0f + metal::precise::exp(-x)); }
};

struct Tanh {
  static float apply(float x) { return metal::precise::tanh(x); }
};

struct Silu {
  static float apply(float x) { return x / (1.0f + metal::precise::exp(-x)); }
};

// x * Phi(x), Phi the standard normal CDF: Phi(x) = erfc(-x / sqrt 2) / 2.
struct Gelu {
  static float apply(float x) {
    const float z = x * M_SQRT1_2_F;
    const float a = fabs(z);
    float phi;
    if (a < ERF_SERIES_LIMIT) {
      phi = fma(0.5f, erf_series(z), 0.5f);
    } else {
      const float half_tail = 0.5f * erfc_tail(a);  // Phi(-|x|)
      phi = z > 0.0f ? 1.0f - half_tail : half_tail;
    }
    return x * phi;
  }
};

// 0.5 x (1 + tanh(u)), u = sqrt(2 / pi) (x + 0.044715 x^3), written as x * sigmoid(2u).
struct GeluTanh {
  static float apply(float x) {
    const float two_u = 1.5957691216057308f * fma(0.044715f * x, x * x, x);  // 2 sqrt(2 / pi) = 1.5957691...
    return metal::precise::divide(x, 1.0f + metal::precise::exp(-two_u));
  }
};

// x tanh(softplus(x)); tanh(log(1 + e)) with e = exp(x) is n / (n + 2), n = e (e + 2).
struct Mish {
  static float apply(float x) {
    if (x > 20.0f) {
      return x;  // tanh(softplus(x)) rounds to 1 from here on (and n would overflow past 44)
    }
    const float e = metal::precise::exp(x);
    const float n = e * (e + 2.0f);
    return x * metal::precise::divide(n, n + 2.0f);
  }
};

// x * relu6(x + 3) / 6.
struct HardSwish {
  static float apply(float x) {
    const float r = x + 3.0f;
    if (r >= 6.0f) {
      return x;  // exact, and x * 6 cannot overflow
    }
    return r < 0.0f ? x * 0.0f : x * r / 6.0f;  // x * 0: NaN and -inf give NaN, -x gives -0, as in torch
  }
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
    v[i] = Op::apply(v[i]);
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
    va[i] = Op::apply(va[i]) * vb[i];
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
