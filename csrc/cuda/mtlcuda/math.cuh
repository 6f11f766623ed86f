// The metal:: math the shipped kernels use, on CUDA's own functions.
//
// CUDA already declares float overloads of exp, log, fma, fabs, max, min, sqrt, rsqrt, ... in the global
// namespace. Kernels say `using namespace metal;`, so namespace metal must not declare a second function with
// the same signature (the call would be ambiguous): it re-exports CUDA's functions by using-declaration and adds
// only what CUDA lacks (half/bfloat overloads, clamp, mix, the precise:: and fast:: namespaces).
// precise:: uses CUDA's IEEE-accurate paths (division and sqrt are correctly rounded unless -use_fast_math);
// fast:: uses the hardware approximations, as Metal's fast math may.
#pragma once

#include "types.cuh"

#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fc00000)
#define HUGE_VALF INFINITY
#define MAXFLOAT 3.402823466e+38f
#define FLT_MAX 3.402823466e+38f
#define FLT_MIN 1.175494351e-38f
#define FLT_EPSILON 1.1920928955e-7f
#define M_E_F 2.718281828459045f
#define M_LOG2E_F 1.4426950408889634f
#define M_LOG10E_F 0.4342944819032518f
#define M_LN2_F 0.6931471805599453f
#define M_LN10_F 2.302585092994046f
#define M_PI_F 3.141592653589793f
#define M_PI_2_F 1.5707963267948966f
#define M_PI_4_F 0.7853981633974483f
#define M_1_PI_F 0.3183098861837907f
#define M_2_PI_F 0.6366197723675814f
#define M_2_SQRTPI_F 1.1283791670955126f
#define M_SQRT2_F 1.4142135623730951f
#define M_SQRT1_2_F 0.7071067811865476f

// 16-bit float overloads: computed in float, rounded back (MSL's half functions return half).
#define MTL_FP16_UNARY(name, f)                                               \
  inline mtl_half name(mtl_half x) { return mtl_half(f(float(x))); }         \
  inline mtl_bfloat name(mtl_bfloat x) { return mtl_bfloat(f(float(x))); }
MTL_FP16_UNARY(exp, ::expf)
MTL_FP16_UNARY(exp2, ::exp2f)
MTL_FP16_UNARY(log, ::logf)
MTL_FP16_UNARY(log2, ::log2f)
MTL_FP16_UNARY(sqrt, ::sqrtf)
MTL_FP16_UNARY(rsqrt, ::rsqrtf)
MTL_FP16_UNARY(fabs, ::fabsf)
MTL_FP16_UNARY(abs, ::fabsf)
MTL_FP16_UNARY(tanh, ::tanhf)
MTL_FP16_UNARY(sin, ::sinf)
MTL_FP16_UNARY(cos, ::cosf)
MTL_FP16_UNARY(floor, ::floorf)
MTL_FP16_UNARY(ceil, ::ceilf)
MTL_FP16_UNARY(round, ::roundf)
MTL_FP16_UNARY(trunc, ::truncf)
MTL_FP16_UNARY(erf, ::erff)
#undef MTL_FP16_UNARY
#define MTL_FP16_BINARY(name, f)                                                              \
  inline mtl_half name(mtl_half a, mtl_half b) { return mtl_half(f(float(a), float(b))); }   \
  inline mtl_bfloat name(mtl_bfloat a, mtl_bfloat b) { return mtl_bfloat(f(float(a), float(b))); }
MTL_FP16_BINARY(max, ::fmaxf)
MTL_FP16_BINARY(min, ::fminf)
MTL_FP16_BINARY(fmax, ::fmaxf)
MTL_FP16_BINARY(fmin, ::fminf)
MTL_FP16_BINARY(pow, ::powf)
MTL_FP16_BINARY(copysign, ::copysignf)
#undef MTL_FP16_BINARY
inline mtl_half fma(mtl_half a, mtl_half b, mtl_half c) { return mtl_half(::fmaf(float(a), float(b), float(c))); }
inline mtl_bfloat fma(mtl_bfloat a, mtl_bfloat b, mtl_bfloat c) {
  return mtl_bfloat(::fmaf(float(a), float(b), float(c)));
}

namespace metal {

using ::abs;
using ::ceil;
using ::copysign;
using ::cos;
using ::erf;
using ::exp;
using ::exp2;
using ::fabs;
using ::floor;
using ::fma;
using ::fmax;
using ::fmin;
using ::log;
using ::log2;
using ::max;
using ::min;
using ::pow;
using ::round;
using ::rsqrt;
using ::sin;
using ::sqrt;
using ::tanh;
using ::trunc;

template <class T> inline T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
inline float saturate(float x) { return ::fminf(::fmaxf(x, 0.0f), 1.0f); }
inline float mix(float a, float b, float t) { return a + (b - a) * t; }
inline float sign(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x; }  // keeps +-0 and NaN
inline float fract(float x) { return ::fminf(x - ::floorf(x), 0x1.fffffep-1f); }
inline bool isnan(float x) { return x != x; }
inline bool isinf(float x) { return ::fabsf(x) == INFINITY; }
inline bool isfinite(float x) { return ::fabsf(x) < INFINITY; }

// Reinterprets the bits of a value as another type of the same size.
template <class T, class U> inline T as_type(const U& u) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of the same size");
  T t;
  memcpy(&t, &u, sizeof(T));
  return t;
}

// numeric_limits for the scalar types kernels use (16-bit floats as bit patterns).
template <class T> struct numeric_limits;
#define MTL_LIMITS(T, lo, hi, low, eps, inf, nan, is_int, is_sgn)                        \
  template <> struct numeric_limits<T> {                                                \
    static constexpr bool is_specialized = true, is_integer = is_int, is_signed = is_sgn; \
    static T min() { return lo; }                                                       \
    static T max() { return hi; }                                                       \
    static T lowest() { return low; }                                                   \
    static T epsilon() { return eps; }                                                  \
    static T infinity() { return inf; }                                                 \
    static T quiet_NaN() { return nan; }                                                \
  };
#define MTL_FP16_BITS(T, b) T((unsigned short)(b), ::mtl::bits_tag{})
MTL_LIMITS(float, 1.175494351e-38f, 3.402823466e+38f, -3.402823466e+38f, 1.1920928955e-7f, INFINITY, NAN, false,
           true)
MTL_LIMITS(mtl_half, MTL_FP16_BITS(mtl_half, 0x0400), MTL_FP16_BITS(mtl_half, 0x7bff), MTL_FP16_BITS(mtl_half, 0xfbff),
           MTL_FP16_BITS(mtl_half, 0x1400), MTL_FP16_BITS(mtl_half, 0x7c00), MTL_FP16_BITS(mtl_half, 0x7e00), false,
           true)
MTL_LIMITS(mtl_bfloat, MTL_FP16_BITS(mtl_bfloat, 0x0080), MTL_FP16_BITS(mtl_bfloat, 0x7f7f),
           MTL_FP16_BITS(mtl_bfloat, 0xff7f), MTL_FP16_BITS(mtl_bfloat, 0x3c00), MTL_FP16_BITS(mtl_bfloat, 0x7f80),
           MTL_FP16_BITS(mtl_bfloat, 0x7fc0), false, true)
MTL_LIMITS(int, (-2147483647 - 1), 2147483647, (-2147483647 - 1), 0, 0, 0, true, true)
MTL_LIMITS(unsigned int, 0u, 0xffffffffu, 0u, 0u, 0u, 0u, true, false)
MTL_LIMITS(short, short(-32768), short(32767), short(-32768), short(0), short(0), short(0), true, true)
MTL_LIMITS(unsigned short, (unsigned short)0, (unsigned short)0xffff, (unsigned short)0, (unsigned short)0,
           (unsigned short)0, (unsigned short)0, true, false)
MTL_LIMITS(long, (-9223372036854775807L - 1), 9223372036854775807L, (-9223372036854775807L - 1), 0L, 0L, 0L, true,
           true)
MTL_LIMITS(unsigned long, 0ul, 0xfffffffffffffffful, 0ul, 0ul, 0ul, 0ul, true, false)
#undef MTL_FP16_BITS
#undef MTL_LIMITS

namespace precise {
inline float exp(float x) { return ::expf(x); }
inline float exp2(float x) { return ::exp2f(x); }
inline float log(float x) { return ::logf(x); }
inline float log2(float x) { return ::log2f(x); }
inline float sqrt(float x) { return ::sqrtf(x); }
inline float rsqrt(float x) { return 1.0f / ::sqrtf(x); }
inline float divide(float a, float b) { return a / b; }
inline float tanh(float x) { return ::tanhf(x); }
inline float sin(float x) { return ::sinf(x); }
inline float cos(float x) { return ::cosf(x); }
inline float pow(float a, float b) { return ::powf(a, b); }
inline float erf(float x) { return ::erff(x); }
}  // namespace precise

namespace fast {
inline float exp(float x) { return ::__expf(x); }
inline float exp2(float x) { return ::exp2f(x); }
inline float log(float x) { return ::__logf(x); }
inline float log2(float x) { return ::__log2f(x); }
inline float sqrt(float x) { return ::sqrtf(x); }
inline float rsqrt(float x) { return ::rsqrtf(x); }
inline float divide(float a, float b) { return ::__fdividef(a, b); }
inline float tanh(float x) { return ::tanhf(x); }
inline float sin(float x) { return ::__sinf(x); }
inline float cos(float x) { return ::__cosf(x); }
inline float pow(float a, float b) { return ::__powf(a, b); }
}  // namespace fast

}  // namespace metal
