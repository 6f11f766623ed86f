// MSL function library: math (metal::, metal::precise::, metal::fast::),
// common, integer, geometric and relational functions, plus MSL constants.
//
// All functions are templates over scalars and vectors.  Templates (rather
// than per-type overloads) keep calls unambiguous next to the C library's
// ::sqrt(double) & co.: an exact template match beats a converting
// non-template, and a same-type non-template such as ::abs(int) wins ties
// while computing the same value.
//
// half/bfloat are computed in float and rounded once to the element type.
// metal::fast is deliberately identical to metal::precise: the emulator
// always computes the precise result.
#pragma once

#include "types.h"

// ---------------------------------------------------------------------------
// Constants.  INFINITY/NAN/HUGE_VALF/MAXFLOAT are spelled exactly as glibc
// spells them so a later <cmath> redefines them without a warning.
// FLT_*, INT_MAX, UINT_MAX, ... come from <cfloat>/<climits>.
// ---------------------------------------------------------------------------
#ifndef INFINITY
#define INFINITY (__builtin_inff ())
#endif
#ifndef NAN
#define NAN (__builtin_nanf (""))
#endif
#ifndef HUGE_VALF
#define HUGE_VALF (__builtin_huge_valf ())
#endif
#ifndef MAXFLOAT
#define MAXFLOAT	3.40282347e+38F
#endif

#ifndef M_PI_F
#define M_E_F 2.71828182845904523536028747135266250f
#define M_LOG2E_F 1.44269504088896340735992468100189214f
#define M_LOG10E_F 0.434294481903251827651128918916605082f
#define M_LN2_F 0.693147180559945309417232121458176568f
#define M_LN10_F 2.30258509299404568401799145468436421f
#define M_PI_F 3.14159265358979323846264338327950288f
#define M_PI_2_F 1.57079632679489661923132169163975144f
#define M_PI_4_F 0.785398163397448309615660845819875721f
#define M_1_PI_F 0.318309886183790671537767526745028724f
#define M_2_PI_F 0.636619772367581343075535053490057448f
#define M_2_SQRTPI_F 1.12837916709551257389615890312154517f
#define M_SQRT2_F 1.41421356237309504880168872420969808f
#define M_SQRT1_2_F 0.707106781186547524400844362104849039f
#endif

#ifndef M_PI_H
#define M_E_H (::half(M_E_F))
#define M_LOG2E_H (::half(M_LOG2E_F))
#define M_LOG10E_H (::half(M_LOG10E_F))
#define M_LN2_H (::half(M_LN2_F))
#define M_LN10_H (::half(M_LN10_F))
#define M_PI_H (::half(M_PI_F))
#define M_PI_2_H (::half(M_PI_2_F))
#define M_PI_4_H (::half(M_PI_4_F))
#define M_1_PI_H (::half(M_1_PI_F))
#define M_2_PI_H (::half(M_2_PI_F))
#define M_2_SQRTPI_H (::half(M_2_SQRTPI_F))
#define M_SQRT2_H (::half(M_SQRT2_F))
#define M_SQRT1_2_H (::half(M_SQRT1_2_F))
#endif

#ifndef HALF_MAX
#define HALF_DIG 3
#define HALF_MANT_DIG 11
#define HALF_MAX_10_EXP 4
#define HALF_MAX_EXP 16
#define HALF_MIN_10_EXP (-4)
#define HALF_MIN_EXP (-13)
#define HALF_RADIX 2
#define HALF_MAX (::half::from_bits(0x7bff))
#define HALF_MIN (::half::from_bits(0x0400))
#define HALF_EPSILON (::half::from_bits(0x1400))
#define MAXHALF HALF_MAX
#define HUGE_VALH (::half::from_bits(0x7c00))
#endif

namespace metal {

// ---------------------------------------------------------------------------
// Scalar float kernels that need more than a single libm call.
// ---------------------------------------------------------------------------
namespace detail {

constexpr double kPi = 3.14159265358979323846264338327950288;

inline float rsqrt_f(float x) { return float(1.0 / __builtin_sqrt(double(x))); }
inline float exp10_f(float x) { return float(__builtin_pow(10.0, double(x))); }

// sinpi/cospi/tanpi: reduce exactly with fmod, so integers and half-integers
// give exact zeros/ones, then evaluate in double.
inline float sinpi_f(float x) {
  if (__builtin_isinf(x)) return __builtin_nanf("");
  const float r = __builtin_fmodf(x, 2.0f);
  if (r == __builtin_truncf(r)) return __builtin_copysignf(0.0f, x);
  return float(__builtin_sin(kPi * double(r)));
}
inline float cospi_f(float x) {
  if (__builtin_isinf(x)) return __builtin_nanf("");
  const float r = __builtin_fabsf(__builtin_fmodf(x, 2.0f));
  if (r == 0.5f || r == 1.5f) return 0.0f;
  return float(__builtin_cos(kPi * double(r)));
}
inline float tanpi_f(float x) {
  if (__builtin_isinf(x)) return __builtin_nanf("");
  const float r = __builtin_fmodf(x, 1.0f);
  if (r == 0.0f) return r;
  if (r == 0.5f) return __builtin_inff();
  if (r == -0.5f) return -__builtin_inff();
  return float(__builtin_tan(kPi * double(r)));
}

// Largest representable value below 1 (fract's upper clamp).
template <class E>
constexpr E below_one() {
  if constexpr (std::is_same<E, float>::value) return __builtin_bit_cast(float, 0x3f7fffffu);
  else if constexpr (std::is_same<E, half>::value) return half::from_bits(0x3bff);
  else return bfloat::from_bits(0x3f7f);
}

template <class E>
inline E nextafter_e(E x, E y) {
  if constexpr (std::is_same<E, float>::value) {
    return __builtin_nextafterf(x, y);
  } else {  // step one ulp of the 16-bit format (float would step too finely)
    if (isnan_e(x) || isnan_e(y)) return E(float(x) + float(y));
    if (x == y) return y;
    if (x == 0) return E::from_bits(uint16_t(y < 0 ? 0x8001u : 0x0001u));
    return E::from_bits(uint16_t((x < y) == (x > 0) ? x.bits + 1u : x.bits - 1u));
  }
}

// Normal in the element's own format (a half subnormal is a normal float).
template <class E>
constexpr bool isnormal_e(E x) {
  if constexpr (std::is_same<E, float>::value) {
    return __builtin_isnormal(x);
  } else {
    const float a = __builtin_fabsf(float(x));
    return a >= float(numeric_limits<E>::min()) && a <= float(numeric_limits<E>::max());
  }
}

inline float smoothstep_f(float edge0, float edge1, float x) {
  const float t = __builtin_fminf(__builtin_fmaxf((x - edge0) / (edge1 - edge0), 0.0f), 1.0f);
  return t * t * (3.0f - 2.0f * t);
}

template <class E>
constexpr E abs_e(E x) {
  if constexpr (is_fp_v<E>) return E(__builtin_fabsf(float(x)));
  else if constexpr (std::is_signed<E>::value) return x < 0 ? neg_e(x) : x;  // abs(INT_MIN) wraps, like the GPU
  else return x;
}

template <class E>
constexpr E clamp_e(E x, E lo, E hi) { return min_e(max_e(x, lo), hi); }
template <class E>
constexpr E median3_e(E x, E y, E z) { return max_e(min_e(x, y), min_e(max_e(x, y), z)); }

// ---- integer element functions --------------------------------------------

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

template <class T> using uns_t = std::make_unsigned_t<T>;
template <class T> constexpr int nbits = int(sizeof(T) * CHAR_BIT);
// Type wide enough for a*b+c of two T without overflow.
template <class T>
using wide_t = std::conditional_t<(sizeof(T) < 8), std::conditional_t<std::is_signed<T>::value, long long, unsigned long long>,
                                  std::conditional_t<std::is_signed<T>::value, i128, u128>>;

template <class T, class W>
constexpr T saturate_to(W w) {
  constexpr W lo = W(std::numeric_limits<T>::min()), hi = W(std::numeric_limits<T>::max());
  return w < lo ? T(lo) : w > hi ? T(hi) : T(w);
}

template <class T> constexpr T clz_e(T x) {
  const uns_t<T> u = uns_t<T>(x);
  if (u == 0) return T(nbits<T>);
  if constexpr (sizeof(T) <= sizeof(unsigned)) return T(__builtin_clz(unsigned(u)) - (32 - nbits<T>));
  else return T(__builtin_clzll((unsigned long long)u));
}
template <class T> constexpr T ctz_e(T x) {
  const uns_t<T> u = uns_t<T>(x);
  if (u == 0) return T(nbits<T>);
  if constexpr (sizeof(T) <= sizeof(unsigned)) return T(__builtin_ctz(unsigned(u)));
  else return T(__builtin_ctzll((unsigned long long)u));
}
template <class T> constexpr T popcount_e(T x) {
  if constexpr (sizeof(T) <= sizeof(unsigned)) return T(__builtin_popcount(unsigned(uns_t<T>(x))));
  else return T(__builtin_popcountll((unsigned long long)uns_t<T>(x)));
}
template <class T> constexpr T reverse_bits_e(T x) {
  uns_t<T> u = uns_t<T>(x), r = 0;
  for (int i = 0; i < nbits<T>; ++i, u = uns_t<T>(u >> 1)) r = uns_t<T>((r << 1) | (u & 1u));
  return T(r);
}
template <class T> constexpr T rotate_e(T v, T i) {
  using U = uns_t<T>;
  const unsigned s = unsigned(U(i)) % unsigned(nbits<T>);
  if (s == 0) return v;
  return T(U(U(U(v) << s) | U(U(v) >> (nbits<T> - s))));
}
template <class T> constexpr T absdiff_e(T a, T b) {
  using U = uns_t<T>;
  return T(a > b ? U(U(a) - U(b)) : U(U(b) - U(a)));
}
template <class T> constexpr T addsat_e(T a, T b) {
  if constexpr (sizeof(T) < 8) {
    return saturate_to<T>((long long)a + (long long)b);
  } else {
    T r{};
    if (!__builtin_add_overflow(a, b, &r)) return r;
    return (std::is_signed<T>::value && b < 0) ? std::numeric_limits<T>::min() : std::numeric_limits<T>::max();
  }
}
template <class T> constexpr T subsat_e(T a, T b) {
  if constexpr (sizeof(T) < 8) {
    return saturate_to<T>((long long)a - (long long)b);
  } else {
    T r{};
    if (!__builtin_sub_overflow(a, b, &r)) return r;
    return (std::is_signed<T>::value && b < 0) ? std::numeric_limits<T>::max() : std::numeric_limits<T>::min();
  }
}
// (a + b) >> 1 and (a + b + 1) >> 1 without intermediate overflow.
template <class T> constexpr T hadd_e(T a, T b) { return T((a >> 1) + (b >> 1) + (a & b & 1)); }
template <class T> constexpr T rhadd_e(T a, T b) { return T((a >> 1) + (b >> 1) + ((a | b) & 1)); }
template <class T> constexpr T mulhi_e(T a, T b) { return T((wide_t<T>(a) * wide_t<T>(b)) >> nbits<T>); }
template <class T> constexpr T madhi_e(T a, T b, T c) { return add_e(mulhi_e(a, b), c); }
template <class T> constexpr T madsat_e(T a, T b, T c) { return saturate_to<T>(wide_t<T>(a) * wide_t<T>(b) + wide_t<T>(c)); }
template <class T> constexpr T mad24_e(T a, T b, T c) { return add_e(mul_e(a, b), c); }

template <class T> constexpr T extract_bits_e(T x, unsigned offset, unsigned bits) {
  if (offset >= unsigned(nbits<T>) || bits == 0) return T(0);
  if (bits > nbits<T> - offset) bits = nbits<T> - offset;  // out of range in MSL; clamp instead of UB
  const unsigned long long v = (unsigned long long)uns_t<T>(x) << (64 - offset - bits);
  if constexpr (std::is_signed<T>::value) return T((long long)v >> (64 - bits));  // sign-extend
  else return T(v >> (64 - bits));
}
template <class T> constexpr T insert_bits_e(T base, T ins, unsigned offset, unsigned bits) {
  if (offset >= unsigned(nbits<T>) || bits == 0) return base;
  if (bits > nbits<T> - offset) bits = nbits<T> - offset;
  const unsigned long long mask = (bits >= 64 ? ~0ull : ((1ull << bits) - 1)) << offset;
  const unsigned long long b = (unsigned long long)uns_t<T>(base), i = (unsigned long long)uns_t<T>(ins);
  return T(uns_t<T>((b & ~mask) | ((i << offset) & mask)));
}

// ---- geometric helpers (always accumulate in float) -------------------------

template <class V> inline float dot_f(const V& a, const V& b) {
  float s = float(a[0]) * float(b[0]);
  for (int i = 1; i < vshape<V>::n; ++i) s += float(a[i]) * float(b[i]);
  return s;
}
template <class V> inline float dist2_f(const V& a, const V& b) {
  float s = 0.0f;
  for (int i = 0; i < vshape<V>::n; ++i) {
    const float d = float(a[i]) - float(b[i]);
    s += d * d;
  }
  return s;
}
template <class R> using fpvec_t = std::enable_if_t<(vshape<R>::n > 0), R>;
// int, or an int vector of the same width.
template <class R> using int_like_t = std::conditional_t<vshape<R>::n == 0, int, vec<int, (vshape<R>::n > 0 ? vshape<R>::n : 2)>>;

}  // namespace detail

// ---------------------------------------------------------------------------
// Floating-point math (float, half, bfloat and their vectors)
// ---------------------------------------------------------------------------
#define MTL_FP_UNARY(name, expr)                                                              \
  template <class X, class R = detail::fp_t<X>>                                               \
  inline R name(X x_) {                                                                       \
    return detail::vmap<R>([](auto e) { const float x = float(e); return decltype(e)(expr); }, R(x_)); \
  }
// The float/integer overloads are more specialised than libstdc++'s
// pow(Tp, Up) & co., which <math.h> (not <cmath>) drags into the global
// namespace; without them pow(x, 2) would be ambiguous there.
#define MTL_FP_BINARY(name, expr)                                                             \
  template <class X, class Y, class R = detail::fp_t<X, Y>>                                   \
  inline R name(X x_, Y y_) {                                                                 \
    return detail::vmap<R>(                                                                   \
        [](auto a, auto b) { const float x = float(a), y = float(b); return decltype(a)(expr); }, R(x_), R(y_)); \
  }                                                                                           \
  template <class I, detail::if_int<I> = 0>                                                   \
  inline float name(float x_, I y_) { return metal::name(x_, float(y_)); }                    \
  template <class I, detail::if_int<I> = 0>                                                   \
  inline float name(I x_, float y_) { return metal::name(float(x_), y_); }
#define MTL_FP_TERNARY(name, expr)                                                            \
  template <class X, class Y, class Z, class R = detail::fp_t<X, Y, Z>>                       \
  inline R name(X x_, Y y_, Z z_) {                                                           \
    return detail::vmap<R>([](auto a, auto b, auto c) {                                       \
      const float x = float(a), y = float(b), z = float(c);                                   \
      return decltype(a)(expr);                                                               \
    }, R(x_), R(y_), R(z_));                                                                  \
  }
// Predicates return bool, or a bool vector of the same width.
#define MTL_FP_PREDICATE(name, expr)                                                          \
  template <class X, class R = detail::fp_t<X>>                                               \
  constexpr detail::bool_t<R> name(X x_) {                                                    \
    return detail::vmap<detail::bool_t<R>>([](auto e) -> bool { const float x = float(e); (void)x; return expr; }, R(x_)); \
  }

MTL_FP_UNARY(acos, __builtin_acosf(x))
MTL_FP_UNARY(acosh, __builtin_acoshf(x))
MTL_FP_UNARY(asin, __builtin_asinf(x))
MTL_FP_UNARY(asinh, __builtin_asinhf(x))
MTL_FP_UNARY(atan, __builtin_atanf(x))
MTL_FP_UNARY(atanh, __builtin_atanhf(x))
MTL_FP_UNARY(cbrt, __builtin_cbrtf(x))
MTL_FP_UNARY(ceil, __builtin_ceilf(x))
MTL_FP_UNARY(cos, __builtin_cosf(x))
MTL_FP_UNARY(cosh, __builtin_coshf(x))
MTL_FP_UNARY(cospi, detail::cospi_f(x))
MTL_FP_UNARY(exp, __builtin_expf(x))
MTL_FP_UNARY(exp2, __builtin_exp2f(x))
MTL_FP_UNARY(exp10, detail::exp10_f(x))
MTL_FP_UNARY(fabs, __builtin_fabsf(x))
MTL_FP_UNARY(floor, __builtin_floorf(x))
MTL_FP_UNARY(log, __builtin_logf(x))
MTL_FP_UNARY(log2, __builtin_log2f(x))
MTL_FP_UNARY(log10, __builtin_log10f(x))
MTL_FP_UNARY(rint, __builtin_rintf(x))
MTL_FP_UNARY(round, __builtin_roundf(x))
MTL_FP_UNARY(rsqrt, detail::rsqrt_f(x))
MTL_FP_UNARY(sin, __builtin_sinf(x))
MTL_FP_UNARY(sinh, __builtin_sinhf(x))
MTL_FP_UNARY(sinpi, detail::sinpi_f(x))
MTL_FP_UNARY(sqrt, __builtin_sqrtf(x))
MTL_FP_UNARY(tan, __builtin_tanf(x))
MTL_FP_UNARY(tanh, __builtin_tanhf(x))
MTL_FP_UNARY(tanpi, detail::tanpi_f(x))
MTL_FP_UNARY(trunc, __builtin_truncf(x))
MTL_FP_UNARY(saturate, __builtin_fminf(__builtin_fmaxf(x, 0.0f), 1.0f))
// 1, -1, or the (signed) zero itself; NaN gives 0.
MTL_FP_UNARY(sign, x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : __builtin_isnan(x) ? 0.0f : x)

MTL_FP_BINARY(atan2, __builtin_atan2f(x, y))
MTL_FP_BINARY(copysign, __builtin_copysignf(x, y))
MTL_FP_BINARY(divide, x / y)
MTL_FP_BINARY(fdim, __builtin_fdimf(x, y))
MTL_FP_BINARY(fmax, __builtin_fmaxf(x, y))
MTL_FP_BINARY(fmin, __builtin_fminf(x, y))
MTL_FP_BINARY(fmod, __builtin_fmodf(x, y))
MTL_FP_BINARY(pow, __builtin_powf(x, y))
MTL_FP_BINARY(powr, x < 0.0f ? __builtin_nanf("") : __builtin_powf(x, y))  // powr is defined for x >= 0 only
MTL_FP_BINARY(step, y < x ? 0.0f : 1.0f)                                     // step(edge, x)

MTL_FP_TERNARY(fma, __builtin_fmaf(x, y, z))
MTL_FP_TERNARY(mad, x * y + z)
MTL_FP_TERNARY(mix, x + (y - x) * z)
MTL_FP_TERNARY(fmax3, __builtin_fmaxf(__builtin_fmaxf(x, y), z))
MTL_FP_TERNARY(fmin3, __builtin_fminf(__builtin_fminf(x, y), z))
MTL_FP_TERNARY(fmedian3, __builtin_fmaxf(__builtin_fminf(x, y), __builtin_fminf(__builtin_fmaxf(x, y), z)))
// smoothstep(edge0, edge1, x)
MTL_FP_TERNARY(smoothstep, detail::smoothstep_f(x, y, z))

MTL_FP_PREDICATE(isfinite, __builtin_isfinite(x))
MTL_FP_PREDICATE(isinf, __builtin_isinf(x))
MTL_FP_PREDICATE(isnan, __builtin_isnan(x))
MTL_FP_PREDICATE(isnormal, detail::isnormal_e(e))
MTL_FP_PREDICATE(signbit, __builtin_signbit(x))

#undef MTL_FP_UNARY
#undef MTL_FP_BINARY
#undef MTL_FP_TERNARY
#undef MTL_FP_PREDICATE

// fract(x) = x - floor(x), clamped below 1 in the element's own format.
template <class X, class R = detail::fp_t<X>>
inline R fract(X x_) {
  return detail::vmap<R>([](auto e) {
    using E = decltype(e);
    const E r = E(float(e) - __builtin_floorf(float(e)));
    return r >= detail::below_one<E>() ? detail::below_one<E>() : r;  // NaN passes through
  }, R(x_));
}

template <class X, class Y, class R = detail::fp_t<X, Y>>
inline R nextafter(X x_, Y y_) {
  return detail::vmap<R>([](auto a, auto b) { return detail::nextafter_e(a, b); }, R(x_), R(y_));
}

template <class X, class R = detail::fp_t<X>>
inline detail::int_like_t<R> ilogb(X x_) {
  return detail::vmap<detail::int_like_t<R>>([](auto e) { return __builtin_ilogbf(float(e)); }, R(x_));
}

// Functions with an out-parameter (thread T&): scalar and vector forms.
template <class T, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline T frexp(T x, int& exponent) { return T(__builtin_frexpf(float(x), &exponent)); }
template <class T, int N, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline vec<T, N> frexp(vec<T, N> x, vec<int, N>& exponent) {
  for (int i = 0; i < N; ++i) x[i] = T(__builtin_frexpf(float(x[i]), &exponent[i]));
  return x;
}

template <class T, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline T ldexp(T x, int k) { return T(__builtin_ldexpf(float(x), k)); }
template <class T, int N, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline vec<T, N> ldexp(vec<T, N> x, vec<int, N> k) {
  for (int i = 0; i < N; ++i) x[i] = T(__builtin_ldexpf(float(x[i]), k[i]));
  return x;
}
template <class T, int N, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline vec<T, N> ldexp(vec<T, N> x, int k) { return metal::ldexp(x, vec<int, N>(k)); }

template <class T, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline T modf(T x, T& intval) {
  float i = 0.0f;
  const float f = __builtin_modff(float(x), &i);
  intval = T(i);
  return T(f);
}
template <class T, int N, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline vec<T, N> modf(vec<T, N> x, vec<T, N>& intval) {
  for (int i = 0; i < N; ++i) x[i] = metal::modf(x[i], intval[i]);
  return x;
}

// Returns sin(x) and stores cos(x).
template <class T, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline T sincos(T x, T& cosval) {
  cosval = T(__builtin_cosf(float(x)));
  return T(__builtin_sinf(float(x)));
}
template <class T, int N, std::enable_if_t<detail::is_fp_v<T>, int> = 0>
inline vec<T, N> sincos(vec<T, N> x, vec<T, N>& cosval) {
  for (int i = 0; i < N; ++i) x[i] = metal::sincos(x[i], cosval[i]);
  return x;
}

// ---------------------------------------------------------------------------
// Functions for both floating and integer types (min/max are in types.h)
// ---------------------------------------------------------------------------
template <class X, class R = detail::lib_t<X>>
constexpr R abs(X x) { return detail::vmap<R>([](auto e) { return detail::abs_e(e); }, R(x)); }

template <class X, class Y, class Z, class R = detail::lib_t<X, Y, Z>>
constexpr R clamp(X x, Y lo, Z hi) {
  return detail::vmap<R>([](auto a, auto b, auto c) { return detail::clamp_e(a, b, c); }, R(x), R(lo), R(hi));
}
template <class X, class Y, class Z, class R = detail::lib_t<X, Y, Z>>
constexpr R min3(X x, Y y, Z z) {
  return detail::vmap<R>([](auto a, auto b, auto c) { return detail::min_e(detail::min_e(a, b), c); }, R(x), R(y), R(z));
}
template <class X, class Y, class Z, class R = detail::lib_t<X, Y, Z>>
constexpr R max3(X x, Y y, Z z) {
  return detail::vmap<R>([](auto a, auto b, auto c) { return detail::max_e(detail::max_e(a, b), c); }, R(x), R(y), R(z));
}
template <class X, class Y, class Z, class R = detail::lib_t<X, Y, Z>>
constexpr R median3(X x, Y y, Z z) {
  return detail::vmap<R>([](auto a, auto b, auto c) { return detail::median3_e(a, b, c); }, R(x), R(y), R(z));
}

// ---------------------------------------------------------------------------
// Integer functions (all integer scalar types except bool, and vectors)
// ---------------------------------------------------------------------------
#define MTL_INT_UNARY(name)                                                                   \
  template <class X, class R = detail::int_t<X>>                                              \
  constexpr R name(X x) { return detail::vmap<R>([](auto a) { return detail::name##_e(a); }, R(x)); }
#define MTL_INT_BINARY(name, fn)                                                              \
  template <class X, class Y, class R = detail::int_t<X, Y>>                                  \
  constexpr R name(X x, Y y) { return detail::vmap<R>([](auto a, auto b) { return detail::fn(a, b); }, R(x), R(y)); }
#define MTL_INT_TERNARY(name, fn)                                                             \
  template <class X, class Y, class Z, class R = detail::int_t<X, Y, Z>>                      \
  constexpr R name(X x, Y y, Z z) {                                                           \
    return detail::vmap<R>([](auto a, auto b, auto c) { return detail::fn(a, b, c); }, R(x), R(y), R(z)); \
  }

MTL_INT_UNARY(clz)
MTL_INT_UNARY(ctz)
MTL_INT_UNARY(popcount)
MTL_INT_UNARY(reverse_bits)
MTL_INT_BINARY(absdiff, absdiff_e)
MTL_INT_BINARY(addsat, addsat_e)
MTL_INT_BINARY(subsat, subsat_e)
MTL_INT_BINARY(hadd, hadd_e)
MTL_INT_BINARY(rhadd, rhadd_e)
MTL_INT_BINARY(mulhi, mulhi_e)
MTL_INT_BINARY(mul24, mul_e)  // operands are assumed to fit 24 bits; full product is as good
MTL_INT_BINARY(rotate, rotate_e)
MTL_INT_TERNARY(mad24, mad24_e)
MTL_INT_TERNARY(madhi, madhi_e)
MTL_INT_TERNARY(madsat, madsat_e)

#undef MTL_INT_UNARY
#undef MTL_INT_BINARY
#undef MTL_INT_TERNARY

template <class X, class R = detail::int_t<X>>
constexpr R extract_bits(X x, uint offset, uint bits) {
  return detail::vmap<R>([=](auto a) { return detail::extract_bits_e(a, offset, bits); }, R(x));
}
template <class X, class Y, class R = detail::int_t<X, Y>>
constexpr R insert_bits(X base, Y insert, uint offset, uint bits) {
  return detail::vmap<R>([=](auto a, auto b) { return detail::insert_bits_e(a, b, offset, bits); }, R(base), R(insert));
}

// ---------------------------------------------------------------------------
// Relational
// ---------------------------------------------------------------------------
constexpr bool all(bool b) { return b; }
constexpr bool any(bool b) { return b; }
template <int N>
constexpr bool all(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (!v[i]) return false;
  return true;
}
template <int N>
constexpr bool any(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (v[i]) return true;
  return false;
}

template <class X, class Y, class R = detail::fp_t<X, Y>>
constexpr detail::bool_t<R> isunordered(X x, Y y) {
  return detail::vmap<detail::bool_t<R>>([](auto a, auto b) { return detail::isnan_e(a) || detail::isnan_e(b); }, R(x), R(y));
}
template <class X, class Y, class R = detail::fp_t<X, Y>>
constexpr detail::bool_t<R> isordered(X x, Y y) { return !isunordered(x, y); }

// select(a, b, c): c ? b : a, component-wise for a bool-vector c.
template <class A, class B, class R = detail::common_t<A, B>>
constexpr R select(A a, B b, bool c) { return c ? R(b) : R(a); }
template <class A, class B, int N, class R = detail::common_t<A, B>, std::enable_if_t<detail::vshape<R>::n == N, int> = 0>
constexpr R select(A a, B b, vec<bool, N> c) {
  R ra(a);
  const R rb(b);
  for (int i = 0; i < N; ++i)
    if (c[i]) ra[i] = rb[i];
  return ra;
}

// ---------------------------------------------------------------------------
// Geometric (floating vectors; computed in float, rounded once)
// ---------------------------------------------------------------------------
template <class X, class Y, class R = detail::fpvec_t<detail::fp_t<X, Y>>>
inline detail::elem_t<R> dot(X x, Y y) { return detail::elem_t<R>(detail::dot_f(R(x), R(y))); }

template <class X, class R = detail::fpvec_t<detail::fp_t<X>>>
inline detail::elem_t<R> length_squared(X x) { const R v(x); return detail::elem_t<R>(detail::dot_f(v, v)); }

template <class X, class R = detail::fpvec_t<detail::fp_t<X>>>
inline detail::elem_t<R> length(X x) { const R v(x); return detail::elem_t<R>(__builtin_sqrtf(detail::dot_f(v, v))); }

template <class X, class Y, class R = detail::fpvec_t<detail::fp_t<X, Y>>>
inline detail::elem_t<R> distance_squared(X x, Y y) { return detail::elem_t<R>(detail::dist2_f(R(x), R(y))); }

template <class X, class Y, class R = detail::fpvec_t<detail::fp_t<X, Y>>>
inline detail::elem_t<R> distance(X x, Y y) { return detail::elem_t<R>(__builtin_sqrtf(detail::dist2_f(R(x), R(y)))); }

template <class X, class R = detail::fpvec_t<detail::fp_t<X>>>
inline R normalize(X x) {
  R v(x);
  const float inv = detail::rsqrt_f(detail::dot_f(v, v));
  for (int i = 0; i < detail::vshape<R>::n; ++i) v[i] = detail::elem_t<R>(float(v[i]) * inv);
  return v;
}

template <class X, class Y, class R = detail::fpvec_t<detail::fp_t<X, Y>>, std::enable_if_t<detail::vshape<R>::n == 3, int> = 0>
inline R cross(X x, Y y) {
  using E = detail::elem_t<R>;
  const R a(x), b(y);
  const float ax = float(a[0]), ay = float(a[1]), az = float(a[2]);
  const float bx = float(b[0]), by = float(b[1]), bz = float(b[2]);
  return R(E(ay * bz - az * by), E(az * bx - ax * bz), E(ax * by - ay * bx));
}

// faceforward(N, I, Nref): N if dot(Nref, I) < 0, else -N.
template <class X, class Y, class Z, class R = detail::fpvec_t<detail::fp_t<X, Y, Z>>>
inline R faceforward(X n, Y i, Z nref) {
  const R rn(n);
  return detail::dot_f(R(nref), R(i)) < 0.0f ? rn : -rn;
}

// reflect(I, N) = I - 2 dot(N, I) N
template <class X, class Y, class R = detail::fpvec_t<detail::fp_t<X, Y>>>
inline R reflect(X i, Y n) {
  R ri(i);
  const R rn(n);
  const float d2 = 2.0f * detail::dot_f(rn, ri);
  for (int k = 0; k < detail::vshape<R>::n; ++k) ri[k] = detail::elem_t<R>(float(ri[k]) - d2 * float(rn[k]));
  return ri;
}

// refract(I, N, eta); zero vector on total internal reflection.
template <class X, class Y, class S, class R = detail::fpvec_t<detail::fp_t<X, Y>>,
          std::enable_if_t<detail::vshape<S>::n == 0, int> = 0>
inline R refract(X i, Y n, S eta_) {
  R ri(i);
  const R rn(n);
  const float eta = float(eta_), d = detail::dot_f(rn, ri);
  const float k = 1.0f - eta * eta * (1.0f - d * d);
  if (k < 0.0f) return R(0);
  const float s = eta * d + __builtin_sqrtf(k);
  for (int c = 0; c < detail::vshape<R>::n; ++c) ri[c] = detail::elem_t<R>(eta * float(ri[c]) - s * float(rn[c]));
  return ri;
}

// ---------------------------------------------------------------------------
// metal::precise and metal::fast: the same implementations.
// ---------------------------------------------------------------------------
#define MTL_MATH_NAMES                                                                        \
  using metal::abs; using metal::acos; using metal::acosh; using metal::asin;                 \
  using metal::asinh; using metal::atan; using metal::atan2; using metal::atanh;              \
  using metal::cbrt; using metal::ceil; using metal::clamp; using metal::copysign;            \
  using metal::cos; using metal::cosh; using metal::cospi; using metal::distance;             \
  using metal::divide; using metal::exp; using metal::exp10; using metal::exp2;               \
  using metal::fabs; using metal::fdim; using metal::floor; using metal::fma;                 \
  using metal::fmax; using metal::fmax3; using metal::fmedian3; using metal::fmin;            \
  using metal::fmin3; using metal::fmod; using metal::fract; using metal::frexp;              \
  using metal::ilogb; using metal::ldexp; using metal::length; using metal::log;              \
  using metal::log10; using metal::log2; using metal::max; using metal::max3;                 \
  using metal::median3; using metal::min; using metal::min3; using metal::mix;                \
  using metal::modf; using metal::nextafter; using metal::normalize; using metal::pow;        \
  using metal::powr; using metal::rint; using metal::round; using metal::rsqrt;               \
  using metal::saturate; using metal::sin; using metal::sincos; using metal::sinh;            \
  using metal::sinpi; using metal::smoothstep; using metal::sqrt; using metal::step;          \
  using metal::tan; using metal::tanh; using metal::tanpi; using metal::trunc;
namespace precise { MTL_MATH_NAMES }
namespace fast { MTL_MATH_NAMES }
#undef MTL_MATH_NAMES

}  // namespace metal
