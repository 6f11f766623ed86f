// <metal_math>, <metal_common>, <metal_relational> and <metal_geometric> for translated kernels.
//
// Every function is a template over Metal's floating-point scalars and vectors (float, half, bfloat), as in the
// emulator's csrc/emu/mtl/math.h, and computes in float, rounding once to the element type. Templates, not
// per-type overloads, because
//   - CUDA declares float (and double) overloads of exp, log, max, ... in the global namespace; kernels say
//     `using namespace metal;`, so an unqualified exp(float) sees both, and the non-template wins the tie
//     (the same value);
//   - real headers add their own non-template overloads to namespace metal (MLX's bf16_math.h defines
//     metal::exp(bfloat) and friends, which Apple's <metal_stdlib> lacks): a template never collides with them,
//     and their exact match wins over it.
// Integer arguments are converted to float, as Metal's overload resolution does for precise::log(10).
// precise:: uses CUDA's IEEE-accurate paths; fast:: uses the hardware approximations Metal's fast math may use.
#pragma once

#include "traits.cuh"

#define INFINITY __builtin_bit_cast(float, 0x7f800000u)
#define NAN __builtin_bit_cast(float, 0x7fc00000u)
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


namespace mtl {
namespace math {

// What a math template accepts, and the type it returns: fp scalars and vectors as they are, integer and double
// scalars as float. No `type` member: not a math argument (the template drops out of overload resolution).
template <class X> struct result {};
template <> struct result<float> { typedef float type; };
template <> struct result<half_t> { typedef half_t type; };
template <> struct result<bfloat_t> { typedef bfloat_t type; };
template <> struct result<double> { typedef float type; };
template <int N> struct result<vec<float, N>> { typedef vec<float, N> type; };
template <int N> struct result<vec<half_t, N>> { typedef vec<half_t, N> type; };
template <int N> struct result<vec<bfloat_t, N>> { typedef vec<bfloat_t, N> type; };
#define MTL_INT_ARG(T) template <> struct result<T> { typedef float type; };
MTL_INT_ARG(bool) MTL_INT_ARG(char) MTL_INT_ARG(signed char) MTL_INT_ARG(unsigned char) MTL_INT_ARG(short)
MTL_INT_ARG(unsigned short) MTL_INT_ARG(int) MTL_INT_ARG(unsigned int) MTL_INT_ARG(long) MTL_INT_ARG(unsigned long)
MTL_INT_ARG(long long) MTL_INT_ARG(unsigned long long)
#undef MTL_INT_ARG

template <class X> struct is_int_scalar { static constexpr bool value = is_intlike<X>::value; };
template <class X> struct is_vec { static constexpr bool value = false; };
template <class T, int N> struct is_vec<vec<T, N>> { static constexpr bool value = true; };

// Two arguments: the same type, an fp scalar or vector with an integer or double scalar (converted), or a vector
// with its element type (broadcast).
template <class A, class B> struct same { static constexpr bool value = false; };
template <class A> struct same<A, A> { static constexpr bool value = true; };
template <bool B, class T, class F> struct pick { typedef T type; };
template <class T, class F> struct pick<false, T, F> { typedef F type; };
template <class X> struct loose { static constexpr bool value = is_intlike<X>::value || same<X, double>::value; };
template <class V, class S> struct vec_of { static constexpr bool value = false; };
template <class T, int N> struct vec_of<vec<T, N>, T> { static constexpr bool value = true; };
struct none {};
template <class A, class B> struct common
    : pick<same<A, B>::value, result<A>,
           typename pick<loose<A>::value && !loose<B>::value, result<B>,
                         typename pick<loose<B>::value && !loose<A>::value, result<A>,
                                       typename pick<vec_of<A, B>::value, result<A>,
                                                     typename pick<vec_of<B, A>::value, result<B>, none>::type>::type
                                       >::type>::type>::type {};

template <class R> struct lanes { static constexpr int n = 1; };
template <class T, int N> struct lanes<vec<T, N>> { static constexpr int n = N; };
template <class R> struct elem { typedef R type; };
template <class T, int N> struct elem<vec<T, N>> { typedef T type; };

// Component i of a scalar (itself) or vector, as float; and storing a float into component i of a result.
template <class X> inline float get(const X& x, int) { return float(x); }
template <class T, int N> inline float get(const vec<T, N>& x, int i) { return float(x.v[i]); }
template <class R> inline void put(R& r, int, float v) { r = R(v); }
template <class T, int N> inline void put(vec<T, N>& r, int i, float v) { r.v[i] = T(v); }
// A scalar operand broadcasts over a vector result.
template <class R, class X> inline float arg(const X& x, int i) {
  if constexpr (is_vec<X>::value) return float(x.v[i]);
  else return float(x);
}

inline float cospi_f(float x) { return ::cospif(x); }
inline float sinpi_f(float x) { return ::sinpif(x); }
inline float tanpi_f(float x) { return ::sinpif(x) / ::cospif(x); }
inline float fract_f(float x) { return ::fminf(x - ::floorf(x), 0x1.fffffep-1f); }
inline float sign_f(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x; }  // keeps +-0 and NaN
inline float median3_f(float a, float b, float c) { return ::fmaxf(::fminf(a, b), ::fminf(::fmaxf(a, b), c)); }
inline float smoothstep_f(float e0, float e1, float x) {
  const float t = ::fminf(::fmaxf((x - e0) / (e1 - e0), 0.0f), 1.0f);
  return t * t * (3.0f - 2.0f * t);
}

}  // namespace math
}  // namespace mtl

#define MTL_MATH_UNARY(name, expr)                                                        \
  template <class X, class R = typename ::mtl::math::result<X>::type>                    \
  inline R name(X x_) {                                                                   \
    R r;                                                                                  \
    for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) {                                  \
      const float x = ::mtl::math::arg<R>(x_, i);                                         \
      ::mtl::math::put(r, i, (expr));                                                     \
    }                                                                                     \
    return r;                                                                             \
  }
#define MTL_MATH_BINARY(name, expr)                                                       \
  template <class X, class Y, class R = typename ::mtl::math::common<X, Y>::type>        \
  inline R name(X x_, Y y_) {                                                             \
    R r;                                                                                  \
    for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) {                                  \
      const float x = ::mtl::math::arg<R>(x_, i), y = ::mtl::math::arg<R>(y_, i);         \
      ::mtl::math::put(r, i, (expr));                                                     \
    }                                                                                     \
    return r;                                                                             \
  }
// Three operands: all of one type, or scalars (float, int) broadcast over a vector (clamp(v, 0.0f, 1.0f)).
#define MTL_MATH_TERNARY(name, expr)                                                      \
  template <class X, class Y, class Z,                                                    \
            class R = typename ::mtl::math::common<X, typename ::mtl::math::common<Y, Z>::type>::type> \
  inline R name(X x_, Y y_, Z z_) {                                                       \
    R r;                                                                                  \
    for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) {                                  \
      const float x = ::mtl::math::arg<R>(x_, i), y = ::mtl::math::arg<R>(y_, i);         \
      const float z = ::mtl::math::arg<R>(z_, i);                                         \
      ::mtl::math::put(r, i, (expr));                                                     \
    }                                                                                     \
    return r;                                                                             \
  }
#define MTL_MATH_PRED(name, expr)                                                         \
  template <class X, class R = typename ::mtl::math::result<X>::type>                    \
  inline typename ::mtl::math::bool_of<R>::type name(X x_) {                              \
    typename ::mtl::math::bool_of<R>::type r;                                             \
    for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) {                                  \
      const float x = ::mtl::math::arg<R>(x_, i);                                         \
      ::mtl::math::put_bool(r, i, (expr));                                                \
    }                                                                                     \
    return r;                                                                             \
  }

namespace mtl {
namespace math {
template <class R> struct bool_of { typedef bool type; };
template <class T, int N> struct bool_of<vec<T, N>> { typedef vec<bool, N> type; };
inline void put_bool(bool& r, int, bool v) { r = v; }
template <int N> inline void put_bool(vec<bool, N>& r, int i, bool v) { r.v[i] = v; }
}  // namespace math
}  // namespace mtl

// The functions with a fast variant: `MTL_FAST_SET(X)` expands X(name, precise expression, fast expression).
#define MTL_FAST_SET(X)                                                                  \
  X(exp, ::expf(x), ::__expf(x))                                                         \
  X(exp2, ::exp2f(x), ::exp2f(x))                                                        \
  X(exp10, ::exp10f(x), ::__exp10f(x))                                                   \
  X(log, ::logf(x), ::__logf(x))                                                         \
  X(log2, ::log2f(x), ::__log2f(x))                                                      \
  X(log10, ::log10f(x), ::__log10f(x))                                                   \
  X(sqrt, ::sqrtf(x), ::sqrtf(x))                                                        \
  X(rsqrt, ::rsqrtf(x), ::rsqrtf(x))                                                     \
  X(sin, ::sinf(x), ::__sinf(x))                                                         \
  X(cos, ::cosf(x), ::__cosf(x))                                                         \
  X(tan, ::tanf(x), ::__tanf(x))                                                         \
  X(tanh, ::tanhf(x), ::tanhf(x))                                                        \
  X(sinh, ::sinhf(x), ::sinhf(x))                                                        \
  X(cosh, ::coshf(x), ::coshf(x))                                                        \
  X(asin, ::asinf(x), ::asinf(x))                                                        \
  X(acos, ::acosf(x), ::acosf(x))                                                        \
  X(atan, ::atanf(x), ::atanf(x))                                                        \
  X(asinh, ::asinhf(x), ::asinhf(x))                                                     \
  X(acosh, ::acoshf(x), ::acoshf(x))                                                     \
  X(atanh, ::atanhf(x), ::atanhf(x))                                                     \
  X(cospi, ::mtl::math::cospi_f(x), ::mtl::math::cospi_f(x))                             \
  X(sinpi, ::mtl::math::sinpi_f(x), ::mtl::math::sinpi_f(x))                             \
  X(tanpi, ::mtl::math::tanpi_f(x), ::mtl::math::tanpi_f(x))                             \
  X(cbrt, ::cbrtf(x), ::cbrtf(x))                                                        \
  X(ceil, ::ceilf(x), ::ceilf(x))                                                        \
  X(floor, ::floorf(x), ::floorf(x))                                                     \
  X(round, ::roundf(x), ::roundf(x))                                                     \
  X(rint, ::rintf(x), ::rintf(x))                                                        \
  X(trunc, ::truncf(x), ::truncf(x))                                                     \
  X(fabs, ::fabsf(x), ::fabsf(x))                                                        \
  X(fract, ::mtl::math::fract_f(x), ::mtl::math::fract_f(x))                             \
  X(saturate, ::fminf(::fmaxf(x, 0.0f), 1.0f), ::fminf(::fmaxf(x, 0.0f), 1.0f))
#define MTL_FAST_SET2(X)                                                                 \
  X(pow, ::powf(x, y), ::__powf(x, y))                                                   \
  X(powr, ::powf(x, y), ::__powf(x, y))                                                  \
  X(divide, x / y, ::__fdividef(x, y))                                                   \
  X(atan2, ::atan2f(x, y), ::atan2f(x, y))                                               \
  X(fmax, ::fmaxf(x, y), ::fmaxf(x, y))                                                  \
  X(fmin, ::fminf(x, y), ::fminf(x, y))                                                  \
  X(fmod, ::fmodf(x, y), ::fmodf(x, y))                                                  \
  X(fdim, ::fdimf(x, y), ::fdimf(x, y))                                                  \
  X(copysign, ::copysignf(x, y), ::copysignf(x, y))
#define MTL_FAST_SET3(X)                                                                 \
  X(fmax3, ::fmaxf(::fmaxf(x, y), z), ::fmaxf(::fmaxf(x, y), z))                          \
  X(fmin3, ::fminf(::fminf(x, y), z), ::fminf(::fminf(x, y), z))                          \
  X(fmedian3, ::mtl::math::median3_f(x, y, z), ::mtl::math::median3_f(x, y, z))

#define MTL_PRECISE_1(name, p, f) MTL_MATH_UNARY(name, p)
#define MTL_FAST_1(name, p, f) MTL_MATH_UNARY(name, f)
#define MTL_PRECISE_2(name, p, f) MTL_MATH_BINARY(name, p)
#define MTL_FAST_2(name, p, f) MTL_MATH_BINARY(name, f)
#define MTL_PRECISE_3(name, p, f) MTL_MATH_TERNARY(name, p)
#define MTL_FAST_3(name, p, f) MTL_MATH_TERNARY(name, f)

namespace metal {

// The unqualified functions compute the precise result, as CUDA's float overloads (which win for float scalars)
// do; fast:: names the approximations explicitly.
MTL_FAST_SET(MTL_PRECISE_1)
MTL_FAST_SET2(MTL_PRECISE_2)
MTL_FAST_SET3(MTL_PRECISE_3)
namespace precise {
MTL_FAST_SET(MTL_PRECISE_1)
MTL_FAST_SET2(MTL_PRECISE_2)
MTL_FAST_SET3(MTL_PRECISE_3)
}  // namespace precise
namespace fast {
MTL_FAST_SET(MTL_FAST_1)
MTL_FAST_SET2(MTL_FAST_2)
MTL_FAST_SET3(MTL_FAST_3)
}  // namespace fast

MTL_MATH_UNARY(sign, ::mtl::math::sign_f(x))
MTL_MATH_BINARY(nextafter, ::nextafterf(x, y))
MTL_MATH_BINARY(step, y < x ? 0.0f : 1.0f)  // step(edge, x)
MTL_MATH_TERNARY(fma, ::fmaf(x, y, z))
MTL_MATH_TERNARY(mix, x + (y - x) * z)
MTL_MATH_TERNARY(smoothstep, ::mtl::math::smoothstep_f(x, y, z))
MTL_MATH_PRED(isnan, x != x)
MTL_MATH_PRED(isinf, ::fabsf(x) == INFINITY)
MTL_MATH_PRED(isfinite, ::fabsf(x) < INFINITY)
MTL_MATH_PRED(isnormal, ::fabsf(x) >= 1.175494351e-38f && ::fabsf(x) < INFINITY)
MTL_MATH_PRED(signbit, ::signbit(x) != 0)
// isunordered(x, y): either is NaN; isordered: neither.
template <class X, class Y, class R = typename ::mtl::math::common<X, Y>::type>
inline typename ::mtl::math::bool_of<R>::type isunordered(X x_, Y y_) {
  typename ::mtl::math::bool_of<R>::type r;
  for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) {
    const float x = ::mtl::math::arg<R>(x_, i), y = ::mtl::math::arg<R>(y_, i);
    ::mtl::math::put_bool(r, i, x != x || y != y);
  }
  return r;
}
template <class X, class Y> inline auto isordered(X x, Y y) -> decltype(isunordered(x, y)) { return !isunordered(x, y); }

// abs, min, max, clamp and the 3-operand forms take integers too, computed in their own type.
namespace detail {
template <class X> struct int_arith { static constexpr bool value = ::mtl::is_intlike<X>::value; };
template <class T, int N> struct int_arith<::mtl::vec<T, N>> { static constexpr bool value = ::mtl::is_intlike<T>::value; };
template <class X> inline X imax(X a, X b) { return a < b ? b : a; }
template <class X> inline X imin(X a, X b) { return b < a ? b : a; }
template <class X> inline X iabs(X a) { return a < X(0) ? X(-a) : a; }
}  // namespace detail
#define MTL_INT_LANEWISE(name, fn, ...)                                                             \
  template <class X, typename ::mtl::enable_if<detail::int_arith<X>::value>::type = 0>              \
  inline X name(__VA_ARGS__) {                                                                      \
    if constexpr (::mtl::math::is_vec<X>::value) {                                                  \
      X r;                                                                                          \
      for (int i = 0; i < ::mtl::math::lanes<X>::n; ++i) r.v[i] = fn;                               \
      return r;                                                                                     \
    } else {                                                                                        \
      const int i = 0; (void)i;                                                                     \
      return fn;                                                                                    \
    }                                                                                               \
  }
#define MTL_L(v) ::mtl::math::lane_ref(v, i)
}  // namespace metal
namespace mtl {
namespace math {
template <class X> inline X lane_ref(const X& x, int) { return x; }
template <class T, int N> inline T lane_ref(const vec<T, N>& x, int i) { return x.v[i]; }
}  // namespace math
}  // namespace mtl
namespace metal {
MTL_INT_LANEWISE(max, detail::imax(MTL_L(a), MTL_L(b)), X a, X b)
MTL_INT_LANEWISE(min, detail::imin(MTL_L(a), MTL_L(b)), X a, X b)
MTL_INT_LANEWISE(abs, detail::iabs(MTL_L(a)), X a)
MTL_INT_LANEWISE(clamp, detail::imin(detail::imax(MTL_L(a), MTL_L(lo)), MTL_L(hi)), X a, X lo, X hi)
MTL_INT_LANEWISE(max3, detail::imax(detail::imax(MTL_L(a), MTL_L(b)), MTL_L(c)), X a, X b, X c)
MTL_INT_LANEWISE(min3, detail::imin(detail::imin(MTL_L(a), MTL_L(b)), MTL_L(c)), X a, X b, X c)
MTL_INT_LANEWISE(median3, detail::imax(detail::imin(MTL_L(a), MTL_L(b)), detail::imin(detail::imax(MTL_L(a), MTL_L(b)), MTL_L(c))), X a, X b, X c)
#undef MTL_L
#undef MTL_INT_LANEWISE
// The floating-point ones (Metal's max and min are fmax and fmin).
MTL_MATH_BINARY(max, ::fmaxf(x, y))
MTL_MATH_BINARY(min, ::fminf(x, y))
MTL_MATH_UNARY(abs, ::fabsf(x))
MTL_MATH_TERNARY(clamp, ::fminf(::fmaxf(x, y), z))
MTL_MATH_TERNARY(max3, ::fmaxf(::fmaxf(x, y), z))
MTL_MATH_TERNARY(min3, ::fminf(::fminf(x, y), z))
MTL_MATH_TERNARY(median3, ::mtl::math::median3_f(x, y, z))

template <class X, class R = typename ::mtl::math::result<X>::type> inline R ldexp(X x, int e) {
  R r;
  for (int i = 0; i < ::mtl::math::lanes<R>::n; ++i) ::mtl::math::put(r, i, ::ldexpf(::mtl::math::arg<R>(x, i), e));
  return r;
}
template <class X, class R = typename ::mtl::math::result<X>::type> inline R frexp(X x, int& e) {
  return R(::frexpf(float(x), &e));
}

// select(a, b, c): b where c is true, else a (lane by lane for vectors).
template <class T> inline T select(T a, T b, bool c) { return c ? b : a; }
template <class T, int N> inline ::mtl::vec<T, N> select(::mtl::vec<T, N> a, ::mtl::vec<T, N> b, ::mtl::vec<bool, N> c) {
  ::mtl::vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = c.v[i] ? b.v[i] : a.v[i];
  return r;
}
template <int N> inline bool any(::mtl::vec<bool, N> v) {
  for (int i = 0; i < N; ++i) if (v.v[i]) return true;
  return false;
}
template <int N> inline bool all(::mtl::vec<bool, N> v) {
  for (int i = 0; i < N; ++i) if (!v.v[i]) return false;
  return true;
}
inline bool any(bool v) { return v; }
inline bool all(bool v) { return v; }

// Geometric functions, accumulated in float.
template <class T, int N> inline T dot(::mtl::vec<T, N> a, ::mtl::vec<T, N> b) {
  float s = 0.0f;
  for (int i = 0; i < N; ++i) s += float(a.v[i]) * float(b.v[i]);
  return T(s);
}
template <class T, int N> inline T length(::mtl::vec<T, N> a) { return T(::sqrtf(float(dot(a, a)))); }
template <class T, int N> inline T distance(::mtl::vec<T, N> a, ::mtl::vec<T, N> b) { return length(a - b); }
template <class T, int N> inline ::mtl::vec<T, N> normalize(::mtl::vec<T, N> a) {
  const float inv = ::rsqrtf(float(dot(a, a)));
  ::mtl::vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = T(float(a.v[i]) * inv);
  return r;
}
template <class T> inline ::mtl::vec<T, 3> cross(::mtl::vec<T, 3> a, ::mtl::vec<T, 3> b) {
  return ::mtl::vec<T, 3>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

// Reinterprets the bits of a value as another type of the same size.
template <class T, class U> inline T as_type(const U& u) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of the same size");
  T t;
  memcpy(&t, &u, sizeof(T));
  return t;
}

// numeric_limits for Metal's scalar types (16-bit floats from bit patterns), usable in constant expressions.
template <class T> struct numeric_limits {
  static constexpr bool is_specialized = false;
};
template <class T> struct numeric_limits<const T> : numeric_limits<T> {};
#define MTL_LIMITS(T, lo, hi, low, eps, inf, nan, is_int, is_sgn, dig)                      \
  template <> struct numeric_limits<T> {                                                  \
    static constexpr bool is_specialized = true, is_integer = is_int, is_signed = is_sgn;   \
    static constexpr bool has_infinity = !is_int, has_quiet_NaN = !is_int;                 \
    static constexpr int digits = dig;                                                    \
    static constexpr T min() { return lo; }                                               \
    static constexpr T max() { return hi; }                                               \
    static constexpr T lowest() { return low; }                                           \
    static constexpr T epsilon() { return eps; }                                          \
    static constexpr T infinity() { return inf; }                                         \
    static constexpr T quiet_NaN() { return nan; }                                        \
  };
#define MTL_INT_LIMITS(T, lo, hi, is_sgn, dig) MTL_LIMITS(T, lo, hi, lo, (T)(0), (T)(0), (T)(0), true, is_sgn, dig)
#define MTL_FP16_BITS(T, b) T((unsigned short)(b), ::mtl::bits_tag{})
MTL_LIMITS(float, 1.175494351e-38f, 3.402823466e+38f, -3.402823466e+38f, 1.1920928955e-7f, INFINITY, NAN, false,
           true, 24)
MTL_LIMITS(mtl_half, MTL_FP16_BITS(mtl_half, 0x0400), MTL_FP16_BITS(mtl_half, 0x7bff), MTL_FP16_BITS(mtl_half, 0xfbff),
           MTL_FP16_BITS(mtl_half, 0x1400), MTL_FP16_BITS(mtl_half, 0x7c00), MTL_FP16_BITS(mtl_half, 0x7e00), false,
           true, 11)
MTL_LIMITS(mtl_bfloat, MTL_FP16_BITS(mtl_bfloat, 0x0080), MTL_FP16_BITS(mtl_bfloat, 0x7f7f),
           MTL_FP16_BITS(mtl_bfloat, 0xff7f), MTL_FP16_BITS(mtl_bfloat, 0x3c00), MTL_FP16_BITS(mtl_bfloat, 0x7f80),
           MTL_FP16_BITS(mtl_bfloat, 0x7fc0), false, true, 8)
MTL_INT_LIMITS(bool, false, true, false, 1)
MTL_INT_LIMITS(char, char(-128), char(127), true, 7)
MTL_INT_LIMITS(signed char, (signed char)(-128), (signed char)(127), true, 7)
MTL_INT_LIMITS(unsigned char, (unsigned char)0, (unsigned char)255, false, 8)
MTL_INT_LIMITS(short, short(-32768), short(32767), true, 15)
MTL_INT_LIMITS(unsigned short, (unsigned short)0, (unsigned short)0xffff, false, 16)
MTL_INT_LIMITS(int, (-2147483647 - 1), 2147483647, true, 31)
MTL_INT_LIMITS(unsigned int, 0u, 0xffffffffu, false, 32)
MTL_INT_LIMITS(long, (-9223372036854775807L - 1), 9223372036854775807L, true, 63)
MTL_INT_LIMITS(unsigned long, 0ul, 0xfffffffffffffffful, false, 64)
MTL_INT_LIMITS(long long, (-9223372036854775807LL - 1), 9223372036854775807LL, true, 63)
MTL_INT_LIMITS(unsigned long long, 0ull, 0xffffffffffffffffull, false, 64)
#undef MTL_FP16_BITS
#undef MTL_INT_LIMITS
#undef MTL_LIMITS

}  // namespace metal

// Apple's <metal_stdlib> declares as_type in the global namespace too (real code calls it without metal::).
using metal::as_type;
