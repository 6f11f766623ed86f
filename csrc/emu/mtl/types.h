// MSL scalar, vector, packed-vector and matrix types for compiling Metal
// kernels as C++17 on a CPU.  See math.h for the function library and
// atomic.h for atomics.
//
// Kept lean on purpose: every kernel compile parses this file, so it avoids
// <cmath> (~0.2 s of parse time) and uses GCC/clang __builtin_* math instead.
#pragma once

#include <cfloat>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <type_traits>

// ---------------------------------------------------------------------------
// Scalar type names.  glibc's <sys/types.h> may already declare uint/ushort/
// ulong; repeating a typedef for the same type is legal C++.
// ---------------------------------------------------------------------------
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
static_assert(sizeof(long) == 8, "MSL long/ulong are 64-bit: needs an LP64 target");

struct half;
struct bfloat;

namespace metal {
template <typename T, int N> struct vec;
template <typename T, int N> struct packed_vec;
template <typename T, int Cols, int Rows> struct matrix;
template <class V, class T, int Lo, int Span, int... I> struct swizzle;

namespace detail {

struct bits_tag {};

// ---- binary16 / bfloat16 <-> binary32 (round to nearest even) -------------

constexpr uint16_t f32_to_f16(float f) {
  const uint32_t x = __builtin_bit_cast(uint32_t, f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)  // NaN: keep sign and top payload bits, force quiet
    return uint16_t(sign | 0x7e00u | ((ax >> 13) & 0x03ffu));
  if (ax >= 0x477ff000u)  // >= 65520 (the tie above HALF_MAX) and Inf -> Inf
    return uint16_t(sign | 0x7c00u);
  if (ax >= 0x38800000u) {  // normal half: rebias exponent, round on bit 13
    const uint32_t r = ax - 0x38000000u;
    return uint16_t(sign | ((r + 0x0fffu + ((r >> 13) & 1u)) >> 13));
  }
  if (ax <= 0x33000000u)  // <= 2^-25: the tie at 2^-25 goes to even, i.e. 0
    return uint16_t(sign);
  // Subnormal half: count units of 2^-24 from the 24-bit significand.
  const uint32_t m = (ax & 0x007fffffu) | 0x00800000u;
  const uint32_t shift = 126u - (ax >> 23);  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

constexpr float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x03ffu;
  if (e == 0x1fu) return __builtin_bit_cast(float, sign | 0x7f800000u | (m << 13));
  if (e != 0) return __builtin_bit_cast(float, sign | ((e + 112u) << 23) | (m << 13));
  const float v = float(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
  return sign ? -v : v;
}

constexpr uint16_t f32_to_bf16(float f) {
  const uint32_t x = __builtin_bit_cast(uint32_t, f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x0040u);  // quiet NaN
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // overflow carries into Inf
}

constexpr float bf16_to_f32(uint16_t b) { return __builtin_bit_cast(float, uint32_t(b) << 16); }

// Integer-like operands of half/bfloat arithmetic (converted to the 16-bit type).
template <class I>
using if_intlike = std::enable_if_t<std::is_integral<I>::value || std::is_enum<I>::value, int>;

// A class that converts to an arithmetic type (MLX's `_NoMask`, `operator bool`) converts on to half in MSL: its
// conversion function, then a standard conversion. With half a class that chain would take two user-defined
// conversions, so half and bfloat take such classes in a converting constructor of their own, through float
// (exact for bool and for every integer that does not round to infinity in half). Classes that convert to the
// 16-bit type themselves keep that conversion; vectors convert to nothing implicitly and are not matched.
template <class T, class C, class = void> struct converts_itself_to : std::false_type {};
template <class T, class C>
struct converts_itself_to<T, C, std::void_t<decltype(std::declval<C&>().operator T())>> : std::true_type {};
template <class T, class C, class D = std::decay_t<C>>
using if_arithmetic_class = std::enable_if_t<std::is_class<D>::value && !std::is_same<D, ::half>::value &&
                                             !std::is_same<D, ::bfloat>::value && std::is_convertible<C, float>::value &&
                                             !converts_itself_to<T, D>::value, int>;

}  // namespace detail

// ADL-visible bases live in their own namespace so that argument-dependent
// lookup on half/vec does not drag metal::detail helpers into kernel calls.
namespace bases {

// Operators shared by half and bfloat.  T op T rounds to T after every
// operation (models Apple GPUs); T op float is float; T op int is T, the integer first converted (rounded) to T
// as MSL's usual arithmetic conversions do (half(3001) is 3000, so `h == 3001` holds for h = 3000).
template <class T>
struct fp16_ops {
#define MTL_FP16_ARITH(op)                                                                   \
  friend constexpr T operator op(T a, T b) { return T(float(a) op float(b)); }               \
  friend constexpr float operator op(T a, float b) { return float(a) op b; }                 \
  friend constexpr float operator op(float a, T b) { return a op float(b); }                 \
  template <class I, detail::if_intlike<I> = 0>                                              \
  friend constexpr T operator op(T a, I b) { return T(float(a) op float(T(b))); }            \
  template <class I, detail::if_intlike<I> = 0>                                              \
  friend constexpr T operator op(I a, T b) { return T(float(T(a)) op float(b)); }            \
  friend constexpr T& operator op##=(T& a, float b) { return a = T(float(a) op b); }
  MTL_FP16_ARITH(+)
  MTL_FP16_ARITH(-)
  MTL_FP16_ARITH(*)
  MTL_FP16_ARITH(/)
#undef MTL_FP16_ARITH

#define MTL_FP16_CMP(op)                                                                     \
  friend constexpr bool operator op(T a, T b) { return float(a) op float(b); }               \
  friend constexpr bool operator op(T a, float b) { return float(a) op b; }                  \
  friend constexpr bool operator op(float a, T b) { return a op float(b); }                  \
  template <class I, detail::if_intlike<I> = 0>                                              \
  friend constexpr bool operator op(T a, I b) { return float(a) op float(T(b)); }            \
  template <class I, detail::if_intlike<I> = 0>                                              \
  friend constexpr bool operator op(I a, T b) { return float(T(a)) op float(b); }
  MTL_FP16_CMP(==)
  MTL_FP16_CMP(!=)
  MTL_FP16_CMP(<)
  MTL_FP16_CMP(<=)
  MTL_FP16_CMP(>)
  MTL_FP16_CMP(>=)
#undef MTL_FP16_CMP

  // `x op= h` for an arithmetic x is `x = x op h` (float += half is float arithmetic; int += half is half's).
  // Spelled out because the built-in `float& += R` candidates would each take a half through another of its
  // conversions (to float, int, long...) and tie.
#define MTL_FP16_COMPOUND(op)                                                                 \
  template <class A, std::enable_if_t<std::is_arithmetic<A>::value, int> = 0>                 \
  friend constexpr A& operator op##=(A& a, T b) { return a = static_cast<A>(a op b); }
  MTL_FP16_COMPOUND(+)
  MTL_FP16_COMPOUND(-)
  MTL_FP16_COMPOUND(*)
  MTL_FP16_COMPOUND(/)
#undef MTL_FP16_COMPOUND

  // Integer-only operators: MSL rejects them on floating operands. Without these, the implicit conversion to the
  // integers would let the built-in `int % int`, `int << int`... take a half.
#define MTL_FP16_NO_INT_OP(op)                                                                \
  template <class X> friend void operator op(T, const X&) = delete;                           \
  template <class X> friend void operator op(const X&, T) = delete;                           \
  template <class X> friend void operator op##=(X&, T) = delete;
  MTL_FP16_NO_INT_OP(%)
  MTL_FP16_NO_INT_OP(<<)
  MTL_FP16_NO_INT_OP(>>)
  MTL_FP16_NO_INT_OP(&)
  MTL_FP16_NO_INT_OP(|)
  MTL_FP16_NO_INT_OP(^)
#undef MTL_FP16_NO_INT_OP
  friend void operator~(T) = delete;

  // Sign flip is exact, so it works on the bits (also for NaN).
  friend constexpr T operator-(T a) { return T(uint16_t(a.bits ^ 0x8000u), detail::bits_tag{}); }
  friend constexpr T operator+(T a) { return a; }
  friend constexpr T& operator++(T& a) { return a += 1.0f; }
  friend constexpr T& operator--(T& a) { return a -= 1.0f; }
  friend constexpr T operator++(T& a, int) { T t = a; a += 1.0f; return t; }
  friend constexpr T operator--(T& a, int) { T t = a; a -= 1.0f; return t; }
};

}  // namespace bases
}  // namespace metal

// ---------------------------------------------------------------------------
// half (IEEE binary16) and bfloat (bfloat16): 16-bit storage, float compute.
// Implicit conversions both ways with float; constructible from integers.
// ---------------------------------------------------------------------------
// Conversions out of half/bfloat: implicit to float, bool and the integers, as in MSL (`uint u = h;` truncates
// toward zero). Each is a template that deduces exactly its target type, so no standard conversion follows it
// (a non-template `operator float` would also serve `int i = h` via float -> int). With both directions implicit,
// `cond ? 0 : h` and `cond ? NAN : h` are ambiguous in C++; the front end gives every `?:` its MSL operand types
// (metal::detail::cond_operand_t, emitted by mpskernels.msl.conditional).
#define MTL_FP16_CONVERSIONS(to_float)                                                                \
  template <class F, std::enable_if_t<std::is_same<F, float>::value, int> = 0>                       \
  constexpr operator F() const { return to_float; }                                                   \
  template <class F, std::enable_if_t<std::is_same<F, bool>::value, int> = 0, int = 0>               \
  constexpr operator F() const { return to_float != 0.0f; }                                           \
  template <class I, std::enable_if_t<std::is_integral<I>::value && !std::is_same<I, bool>::value, int> = 0, \
            int = 0, int = 0>                                                                         \
  constexpr operator I() const { return I(float(*this)); }

struct half : metal::bases::fp16_ops<half> {
  uint16_t bits;
  half() = default;
  constexpr half(float f) : fp16_ops{}, bits(metal::detail::f32_to_f16(f)) {}
  template <class I, metal::detail::if_intlike<I> = 0>
  constexpr half(I i) : fp16_ops{}, bits(metal::detail::f32_to_f16(float(i))) {}
  template <class C, metal::detail::if_arithmetic_class<half, C> = 0>
  constexpr half(C&& c) : fp16_ops{}, bits(metal::detail::f32_to_f16(static_cast<float>(static_cast<C&&>(c)))) {}
  constexpr half(uint16_t b, metal::detail::bits_tag) : fp16_ops{}, bits(b) {}
  static constexpr half from_bits(uint16_t b) { return half(b, metal::detail::bits_tag{}); }
  MTL_FP16_CONVERSIONS(metal::detail::f16_to_f32(bits))
};

struct bfloat : metal::bases::fp16_ops<bfloat> {
  uint16_t bits;
  bfloat() = default;
  constexpr bfloat(float f) : fp16_ops{}, bits(metal::detail::f32_to_bf16(f)) {}
  template <class I, metal::detail::if_intlike<I> = 0>
  constexpr bfloat(I i) : fp16_ops{}, bits(metal::detail::f32_to_bf16(float(i))) {}
  template <class C, metal::detail::if_arithmetic_class<bfloat, C> = 0>
  constexpr bfloat(C&& c) : fp16_ops{}, bits(metal::detail::f32_to_bf16(static_cast<float>(static_cast<C&&>(c)))) {}
  constexpr bfloat(uint16_t b, metal::detail::bits_tag) : fp16_ops{}, bits(b) {}
  static constexpr bfloat from_bits(uint16_t b) { return bfloat(b, metal::detail::bits_tag{}); }
  MTL_FP16_CONVERSIONS(metal::detail::bf16_to_f32(bits))
};
#undef MTL_FP16_CONVERSIONS

typedef bfloat bfloat16_t;

static_assert(sizeof(half) == 2 && alignof(half) == 2, "half layout");
static_assert(sizeof(bfloat) == 2 && alignof(bfloat) == 2, "bfloat layout");
static_assert(std::is_trivially_copyable<half>::value && std::is_trivially_default_constructible<half>::value, "half must be trivial");
static_assert(std::is_trivially_copyable<bfloat>::value && std::is_trivially_default_constructible<bfloat>::value, "bfloat must be trivial");

namespace metal {
using ::half;
using ::bfloat;

// ---------------------------------------------------------------------------
// Type classification used by vectors and the function library.
// ---------------------------------------------------------------------------
namespace detail {

template <class T> struct is_fp16 : std::false_type {};
template <> struct is_fp16<half> : std::true_type {};
template <> struct is_fp16<bfloat> : std::true_type {};

// The operand types of `c ? x : y` as MSL gives them (the usual arithmetic conversions), where half and bfloat,
// being classes here, would make C++ refuse the expression (each operand converts to the other): half/bfloat with
// float -> float; with an integer, bool or enumeration -> the 16-bit type. X and Y are decltype((x)) and
// decltype((y)); the front end (mpskernels.msl.conditional) casts x to cond_operand_t<X, Y> and y to
// cond_operand_t<Y, X>. Every other pair keeps its type (X), so C++'s own rules and errors apply.
template <class X, class Y>
struct cond_operand {
  using A = std::remove_cv_t<std::remove_reference_t<X>>;
  using B = std::remove_cv_t<std::remove_reference_t<Y>>;
  static constexpr bool to_float = (is_fp16<A>::value && std::is_same<B, float>::value) ||
                                   (is_fp16<B>::value && std::is_same<A, float>::value);
  static constexpr bool to_fp16 = is_fp16<B>::value && (std::is_integral<A>::value || std::is_enum<A>::value);
  using type = std::conditional_t<to_float, float, std::conditional_t<to_fp16, B, X>>;
};
template <class X, class Y> using cond_operand_t = typename cond_operand<X, Y>::type;

// MSL floating types (double is deliberately not one of them).
template <class T> constexpr bool is_fp_v = std::is_same<T, float>::value || is_fp16<T>::value;
template <class T> constexpr bool is_int_v = std::is_integral<T>::value;
// Scalars that may appear as vector components or be broadcast; double is
// accepted so a stray unsuffixed literal still converts instead of failing.
template <class T> constexpr bool is_num_v = is_fp_v<T> || is_int_v<T> || std::is_same<T, double>::value;

template <class T> using if_num = std::enable_if_t<is_num_v<T>, int>;
template <class T> using if_int = std::enable_if_t<is_int_v<T>, int>;

template <class T> struct identity { using type = T; };
template <class T> using identity_t = typename identity<T>::type;

// Shape of an operand: n == 0 for scalars, N for vec/packed_vec, -1 otherwise.
template <class X, class = void> struct vshape { static constexpr int n = -1; using elem = void; };
template <class X> struct vshape<X, std::enable_if_t<is_num_v<X>>> { static constexpr int n = 0; using elem = X; };
template <class T, int N> struct vshape<vec<T, N>> { static constexpr int n = N; using elem = T; };
template <class T, int N> struct vshape<packed_vec<T, N>> { static constexpr int n = N; using elem = T; };
template <class V, class T, int Lo, int Span, int... I>
struct vshape<swizzle<V, T, Lo, Span, I...>> { static constexpr int n = int(sizeof...(I)); using elem = T; };
template <class X> using elem_t = typename vshape<X>::elem;

template <class X> struct is_packed : std::false_type {};
template <class T, int N> struct is_packed<packed_vec<T, N>> : std::true_type {};
template <class X> using if_not_packed = std::enable_if_t<!is_packed<X>::value, int>;

// Component count contributed to a vector constructor (100 = not allowed).
template <class X> constexpr int ncomp = vshape<X>::n == 0 ? 1 : vshape<X>::n > 0 ? vshape<X>::n : 100;
template <class... X> constexpr int ncomp_sum = (0 + ... + ncomp<X>);

// Result type of mixing two scalar types in a function call (MSL promotes the
// other operand to the floating type; mixed float widths give float).
template <class A, class B, class = void> struct scalar_common {};
template <class A> struct scalar_common<A, A, std::enable_if_t<!std::is_same<A, double>::value>> { using type = A; };
template <class A, class B>
struct scalar_common<A, B, std::enable_if_t<!std::is_same<A, B>::value>> {
  // Select the trait first and take ::type last so common_type is only
  // instantiated for integer pairs.
  using type = typename std::conditional_t<
      is_fp_v<A> && is_fp_v<B>, identity<float>,
      std::conditional_t<is_fp_v<A>, identity<A>,
                         std::conditional_t<is_fp_v<B>, identity<B>,
                                            std::conditional_t<std::is_same<A, double>::value || std::is_same<B, double>::value,
                                                               identity<float>, std::common_type<A, B>>>>>::type;
};

// Common operand type of a call: vectors must agree exactly (packed ones count
// as their vec), scalars are broadcast to the vector's element type.
template <class X> using canon_t = std::conditional_t<(vshape<X>::n > 0), vec<elem_t<X>, (vshape<X>::n > 0 ? vshape<X>::n : 2)>, X>;

template <class A, class B, class = void> struct common2 {};
template <class A, class B>
struct common2<A, B, std::enable_if_t<vshape<A>::n == 0 && vshape<B>::n == 0>> : scalar_common<A, B> {};
template <class A, class B>
struct common2<A, B, std::enable_if_t<(vshape<A>::n > 0) && vshape<B>::n == 0>> { using type = vec<elem_t<A>, vshape<A>::n>; };
template <class A, class B>
struct common2<A, B, std::enable_if_t<vshape<A>::n == 0 && (vshape<B>::n > 0)>> { using type = vec<elem_t<B>, vshape<B>::n>; };
template <class A, class B>
struct common2<A, B, std::enable_if_t<(vshape<A>::n > 0) && std::is_same<canon_t<A>, canon_t<B>>::value>> { using type = canon_t<A>; };

template <class AB, class C, class = void> struct common_then {};
template <class AB, class C> struct common_then<AB, C, std::void_t<typename AB::type>> : common2<typename AB::type, C> {};

template <class... X> struct common {};
template <class A> struct common<A> : common2<A, A> {};
template <class A, class B> struct common<A, B> : common2<A, B> {};
template <class A, class B, class C> struct common<A, B, C> : common_then<common2<A, B>, C> {};

template <class... X> using common_t = typename common<X...>::type;
// Floating-point functions take integer scalars too (precise::log(10) is log(10.0f) in MSL): an all-integer
// scalar call computes in float. Integer vectors stay rejected, as in MSL.
// Apple's library has no bfloat overloads (MLX's bf16_math.h defines them itself): a bfloat argument converts to
// float and the result is a float, unrounded. So the function library computes bfloat operands as float.
template <class C> struct no_bfloat { using type = C; };
template <> struct no_bfloat<bfloat> { using type = float; };
template <int N> struct no_bfloat<vec<bfloat, N>> { using type = vec<float, N>; };
template <class... X> using lib_t = typename no_bfloat<common_t<X...>>::type;
template <class C> using fp_promote_t = std::conditional_t<vshape<C>::n == 0 && is_int_v<C> && !std::is_same<C, bool>::value, float, C>;
template <class... X> using fp_t = std::enable_if_t<is_fp_v<elem_t<fp_promote_t<lib_t<X...>>>>, fp_promote_t<lib_t<X...>>>;
template <class... X>
using int_t = std::enable_if_t<is_int_v<elem_t<common_t<X...>>> && !std::is_same<elem_t<common_t<X...>>, bool>::value, common_t<X...>>;

// bool, or bool vector of the same width.
template <class R> using bool_t = std::conditional_t<vshape<R>::n == 0, bool, vec<bool, (vshape<R>::n > 0 ? vshape<R>::n : 2)>>;

// Apply f component-wise (or once, for scalars); all args already of shape R.
template <class R, class F, class... A>
constexpr R vmap(F f, const A&... a) {
  if constexpr (vshape<R>::n == 0) {
    return R(f(a...));
  } else {
    R r{};
    for (int i = 0; i < vshape<R>::n; ++i) r[i] = f(a[i]...);
    return r;
  }
}

// ---- element operations used by vector operators --------------------------

// Integer vector arithmetic wraps like the GPU: compute in an unsigned type at
// least as wide as int (avoids signed-overflow UB and int promotion traps).
template <class T> constexpr bool wraps_v = std::is_integral<T>::value && !std::is_same<T, bool>::value;
template <class T> struct wide_u { using type = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>; };
template <class T> using wide_u_t = typename wide_u<T>::type;

template <class T> constexpr T add_e(T a, T b) { if constexpr (wraps_v<T>) return T(wide_u_t<T>(a) + wide_u_t<T>(b)); else return T(a + b); }
template <class T> constexpr T sub_e(T a, T b) { if constexpr (wraps_v<T>) return T(wide_u_t<T>(a) - wide_u_t<T>(b)); else return T(a - b); }
template <class T> constexpr T mul_e(T a, T b) { if constexpr (wraps_v<T>) return T(wide_u_t<T>(a) * wide_u_t<T>(b)); else return T(a * b); }
template <class T> constexpr T neg_e(T a) { if constexpr (wraps_v<T>) return T(0u - wide_u_t<T>(a)); else return T(-a); }
template <class T> constexpr T div_e(T a, T b) { return T(a / b); }
template <class T> constexpr T mod_e(T a, T b) { return T(a % b); }
template <class T> constexpr T and_e(T a, T b) { return T(a & b); }
template <class T> constexpr T or_e(T a, T b) { return T(a | b); }
template <class T> constexpr T xor_e(T a, T b) { return T(a ^ b); }
// Shift counts are taken modulo the (promoted) width instead of being UB.
template <class T> constexpr T shl_e(T a, T b) {
  using U = wide_u_t<T>;
  return T(U(a) << (U(b) & (sizeof(U) * 8 - 1)));
}
template <class T> constexpr T shr_e(T a, T b) {
  using U = wide_u_t<T>;
  using S = std::conditional_t<std::is_signed<T>::value, std::make_signed_t<U>, U>;
  return T(S(a) >> (U(b) & (sizeof(U) * 8 - 1)));
}

template <class T> constexpr bool isnan_e(T a) { return __builtin_isnan(float(a)); }

// MSL min/max on floats are fmin/fmax: a NaN operand yields the other one.
template <class T> constexpr T min_e(T a, T b) {
  if constexpr (is_fp_v<T>) return (b < a || isnan_e(a)) ? b : a;
  else return b < a ? b : a;
}
template <class T> constexpr T max_e(T a, T b) {
  if constexpr (is_fp_v<T>) return (a < b || isnan_e(a)) ? b : a;
  else return a < b ? b : a;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Vector storage: real lvalue members .x/.y/.z/.w and .r/.g/.b/.a aliased
// with v[] through an anonymous union (GNU anonymous-struct extension).
// ---------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wgnu-anonymous-struct"
#pragma clang diagnostic ignored "-Wnested-anon-types"
#pragma clang diagnostic ignored "-Wpedantic"
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
// ---------------------------------------------------------------------------
// Multi-component swizzles (v.xy, v.zyx, v.xxyy, v.bgr): union members of type swizzle<V, T, Lo, Span, I...>,
// which holds exactly the components Lo .. Lo+Span-1 of the vector and sits at their offset. Reading converts to
// V = vec<T, sizeof...(I)>. Without repeated components a swizzle is an lvalue too (v.xy = w, v.zyx += u).
// Copying one swizzle object onto another of the same type (a.yx = b.yx) is the implicit, trivial copy of that
// span, which is exactly the component-wise assignment; this is why only swizzles whose components are adjacent
// are modelled (v.xz, v.xw: not members, so they fail to compile instead of copying a wrong span).
// ---------------------------------------------------------------------------
namespace detail {
template <int... I> constexpr int count_v = int(sizeof...(I));
template <int... I> constexpr bool distinct_v = true;
template <int A, int... R> constexpr bool distinct_v<A, R...> = ((A != R) && ...) && distinct_v<R...>;
}  // namespace detail

template <class V, class T, int Lo, int Span, int... I>
struct swizzle {
  T s[Span];

  constexpr T operator[](int i) const {
    constexpr int idx[] = {I...};
    return s[idx[i] - Lo];
  }
  constexpr operator V() const { return V(s[I - Lo]...); }

  // Assignment through a swizzle: only without repeated components, as in MSL. (The implicit copy from the same
  // swizzle type stays trivial: the vector must remain trivially copyable.) Compound assignments are free
  // functions below: every vector type instantiates hundreds of swizzle types, so each one stays small.
  template <class X, bool Distinct = detail::distinct_v<I...>,
            std::enable_if_t<Distinct && std::is_convertible<X, V>::value, int> = 0>
  constexpr swizzle& operator=(const X& x) {
    const V val(x);
    int k = 0;
    ((s[I - Lo] = val[k++]), ...);
    return *this;
  }
};

#define MTL_SWIZZLE_ASSIGN(op)                                                                          \
  template <class V, class T, int Lo, int Span, int... I, class X,                                      \
            std::enable_if_t<detail::distinct_v<I...>, int> = 0>                                        \
  constexpr auto operator op##=(swizzle<V, T, Lo, Span, I...>& sw, const X& x)->decltype(sw = V(V(sw) op x)) { \
    return sw = V(V(sw) op x);                                                                          \
  }
MTL_SWIZZLE_ASSIGN(+)
MTL_SWIZZLE_ASSIGN(-)
MTL_SWIZZLE_ASSIGN(*)
MTL_SWIZZLE_ASSIGN(/)
#undef MTL_SWIZZLE_ASSIGN

template <class X> struct is_swizzle : std::false_type {};
template <class V, class T, int Lo, int Span, int... I> struct is_swizzle<swizzle<V, T, Lo, Span, I...>> : std::true_type {};

#define MTL_SWIZZLE(lo, span, ...) ::metal::swizzle<::metal::vec<T, detail::count_v<__VA_ARGS__>>, T, lo, span, __VA_ARGS__>
// One member per swizzle of adjacent components (the table is generated: each entry is `swizzle<...> name;`,
// wrapped in a struct with a leading pad array when the first component is not x). Every vector type
// instantiates all its members, which costs compile time, so the table holds: .xyzw swizzles of 2 and 3
// components, of 4 components without repeats or over at most two components (v.xxyy, v.xyxy, v.wzyx), and
// .rgba swizzles without repeats. Others (v.xyzz, v.rrgg) fail to compile.
#define MTL_SWIZZLES_2 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \

#define MTL_SWIZZLES_3 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  struct { T _at_yz[1]; MTL_SWIZZLE(1, 2, 1, 2) yz; }; \
  struct { T _at_zy[1]; MTL_SWIZZLE(1, 2, 2, 1) zy; }; \
  struct { T _at_zz[2]; MTL_SWIZZLE(2, 1, 2, 2) zz; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) xyz; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) xzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) yxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  struct { T _at_yyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) yyz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) yzx; \
  struct { T _at_yzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) yzy; }; \
  struct { T _at_yzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) yzz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) zxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) zyx; \
  struct { T _at_zyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) zyy; }; \
  struct { T _at_zyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) zyz; }; \
  struct { T _at_zzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) zzy; }; \
  struct { T _at_zzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) zzz; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  struct { T _at_yyyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) yyyz; }; \
  struct { T _at_yyzy[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) yyzy; }; \
  struct { T _at_yyzz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) yyzz; }; \
  struct { T _at_yzyy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) yzyy; }; \
  struct { T _at_yzyz[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) yzyz; }; \
  struct { T _at_yzzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) yzzy; }; \
  struct { T _at_yzzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) yzzz; }; \
  struct { T _at_zyyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) zyyy; }; \
  struct { T _at_zyyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) zyyz; }; \
  struct { T _at_zyzy[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) zyzy; }; \
  struct { T _at_zyzz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) zyzz; }; \
  struct { T _at_zzyy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) zzyy; }; \
  struct { T _at_zzyz[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) zzyz; }; \
  struct { T _at_zzzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) zzzy; }; \
  struct { T _at_zzzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) zzzz; }; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \
  struct { T _at_gb[1]; MTL_SWIZZLE(1, 2, 1, 2) gb; }; \
  struct { T _at_bg[1]; MTL_SWIZZLE(1, 2, 2, 1) bg; }; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) rgb; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) rbg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) grb; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) gbr; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) brg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) bgr; \

#define MTL_SWIZZLES_4 \
  MTL_SWIZZLE(0, 1, 0, 0) xx; \
  MTL_SWIZZLE(0, 2, 0, 1) xy; \
  MTL_SWIZZLE(0, 2, 1, 0) yx; \
  struct { T _at_yy[1]; MTL_SWIZZLE(1, 1, 1, 1) yy; }; \
  struct { T _at_yz[1]; MTL_SWIZZLE(1, 2, 1, 2) yz; }; \
  struct { T _at_zy[1]; MTL_SWIZZLE(1, 2, 2, 1) zy; }; \
  struct { T _at_zz[2]; MTL_SWIZZLE(2, 1, 2, 2) zz; }; \
  struct { T _at_zw[2]; MTL_SWIZZLE(2, 2, 2, 3) zw; }; \
  struct { T _at_wz[2]; MTL_SWIZZLE(2, 2, 3, 2) wz; }; \
  struct { T _at_ww[3]; MTL_SWIZZLE(3, 1, 3, 3) ww; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0) xxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1) xxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0) xyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1) xyy; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) xyz; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) xzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0) yxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1) yxy; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) yxz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0) yyx; \
  struct { T _at_yyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1) yyy; }; \
  struct { T _at_yyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2) yyz; }; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) yzx; \
  struct { T _at_yzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1) yzy; }; \
  struct { T _at_yzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2) yzz; }; \
  struct { T _at_yzw[1]; MTL_SWIZZLE(1, 3, 1, 2, 3) yzw; }; \
  struct { T _at_ywz[1]; MTL_SWIZZLE(1, 3, 1, 3, 2) ywz; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) zxy; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) zyx; \
  struct { T _at_zyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1) zyy; }; \
  struct { T _at_zyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2) zyz; }; \
  struct { T _at_zyw[1]; MTL_SWIZZLE(1, 3, 2, 1, 3) zyw; }; \
  struct { T _at_zzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1) zzy; }; \
  struct { T _at_zzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2) zzz; }; \
  struct { T _at_zzw[2]; MTL_SWIZZLE(2, 2, 2, 2, 3) zzw; }; \
  struct { T _at_zwy[1]; MTL_SWIZZLE(1, 3, 2, 3, 1) zwy; }; \
  struct { T _at_zwz[2]; MTL_SWIZZLE(2, 2, 2, 3, 2) zwz; }; \
  struct { T _at_zww[2]; MTL_SWIZZLE(2, 2, 2, 3, 3) zww; }; \
  struct { T _at_wyz[1]; MTL_SWIZZLE(1, 3, 3, 1, 2) wyz; }; \
  struct { T _at_wzy[1]; MTL_SWIZZLE(1, 3, 3, 2, 1) wzy; }; \
  struct { T _at_wzz[2]; MTL_SWIZZLE(2, 2, 3, 2, 2) wzz; }; \
  struct { T _at_wzw[2]; MTL_SWIZZLE(2, 2, 3, 2, 3) wzw; }; \
  struct { T _at_wwz[2]; MTL_SWIZZLE(2, 2, 3, 3, 2) wwz; }; \
  struct { T _at_www[3]; MTL_SWIZZLE(3, 1, 3, 3, 3) www; }; \
  MTL_SWIZZLE(0, 1, 0, 0, 0, 0) xxxx; \
  MTL_SWIZZLE(0, 2, 0, 0, 0, 1) xxxy; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 0) xxyx; \
  MTL_SWIZZLE(0, 2, 0, 0, 1, 1) xxyy; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 0) xyxx; \
  MTL_SWIZZLE(0, 2, 0, 1, 0, 1) xyxy; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 0) xyyx; \
  MTL_SWIZZLE(0, 2, 0, 1, 1, 1) xyyy; \
  MTL_SWIZZLE(0, 4, 0, 1, 2, 3) xyzw; \
  MTL_SWIZZLE(0, 4, 0, 1, 3, 2) xywz; \
  MTL_SWIZZLE(0, 4, 0, 2, 1, 3) xzyw; \
  MTL_SWIZZLE(0, 4, 0, 2, 3, 1) xzwy; \
  MTL_SWIZZLE(0, 4, 0, 3, 1, 2) xwyz; \
  MTL_SWIZZLE(0, 4, 0, 3, 2, 1) xwzy; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 0) yxxx; \
  MTL_SWIZZLE(0, 2, 1, 0, 0, 1) yxxy; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 0) yxyx; \
  MTL_SWIZZLE(0, 2, 1, 0, 1, 1) yxyy; \
  MTL_SWIZZLE(0, 4, 1, 0, 2, 3) yxzw; \
  MTL_SWIZZLE(0, 4, 1, 0, 3, 2) yxwz; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 0) yyxx; \
  MTL_SWIZZLE(0, 2, 1, 1, 0, 1) yyxy; \
  MTL_SWIZZLE(0, 2, 1, 1, 1, 0) yyyx; \
  struct { T _at_yyyy[1]; MTL_SWIZZLE(1, 1, 1, 1, 1, 1) yyyy; }; \
  struct { T _at_yyyz[1]; MTL_SWIZZLE(1, 2, 1, 1, 1, 2) yyyz; }; \
  struct { T _at_yyzy[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 1) yyzy; }; \
  struct { T _at_yyzz[1]; MTL_SWIZZLE(1, 2, 1, 1, 2, 2) yyzz; }; \
  MTL_SWIZZLE(0, 4, 1, 2, 0, 3) yzxw; \
  struct { T _at_yzyy[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 1) yzyy; }; \
  struct { T _at_yzyz[1]; MTL_SWIZZLE(1, 2, 1, 2, 1, 2) yzyz; }; \
  struct { T _at_yzzy[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 1) yzzy; }; \
  struct { T _at_yzzz[1]; MTL_SWIZZLE(1, 2, 1, 2, 2, 2) yzzz; }; \
  MTL_SWIZZLE(0, 4, 1, 2, 3, 0) yzwx; \
  MTL_SWIZZLE(0, 4, 1, 3, 0, 2) ywxz; \
  MTL_SWIZZLE(0, 4, 1, 3, 2, 0) ywzx; \
  MTL_SWIZZLE(0, 4, 2, 0, 1, 3) zxyw; \
  MTL_SWIZZLE(0, 4, 2, 0, 3, 1) zxwy; \
  MTL_SWIZZLE(0, 4, 2, 1, 0, 3) zyxw; \
  struct { T _at_zyyy[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 1) zyyy; }; \
  struct { T _at_zyyz[1]; MTL_SWIZZLE(1, 2, 2, 1, 1, 2) zyyz; }; \
  struct { T _at_zyzy[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 1) zyzy; }; \
  struct { T _at_zyzz[1]; MTL_SWIZZLE(1, 2, 2, 1, 2, 2) zyzz; }; \
  MTL_SWIZZLE(0, 4, 2, 1, 3, 0) zywx; \
  struct { T _at_zzyy[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 1) zzyy; }; \
  struct { T _at_zzyz[1]; MTL_SWIZZLE(1, 2, 2, 2, 1, 2) zzyz; }; \
  struct { T _at_zzzy[1]; MTL_SWIZZLE(1, 2, 2, 2, 2, 1) zzzy; }; \
  struct { T _at_zzzz[2]; MTL_SWIZZLE(2, 1, 2, 2, 2, 2) zzzz; }; \
  struct { T _at_zzzw[2]; MTL_SWIZZLE(2, 2, 2, 2, 2, 3) zzzw; }; \
  struct { T _at_zzwz[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 2) zzwz; }; \
  struct { T _at_zzww[2]; MTL_SWIZZLE(2, 2, 2, 2, 3, 3) zzww; }; \
  MTL_SWIZZLE(0, 4, 2, 3, 0, 1) zwxy; \
  MTL_SWIZZLE(0, 4, 2, 3, 1, 0) zwyx; \
  struct { T _at_zwzz[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 2) zwzz; }; \
  struct { T _at_zwzw[2]; MTL_SWIZZLE(2, 2, 2, 3, 2, 3) zwzw; }; \
  struct { T _at_zwwz[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 2) zwwz; }; \
  struct { T _at_zwww[2]; MTL_SWIZZLE(2, 2, 2, 3, 3, 3) zwww; }; \
  MTL_SWIZZLE(0, 4, 3, 0, 1, 2) wxyz; \
  MTL_SWIZZLE(0, 4, 3, 0, 2, 1) wxzy; \
  MTL_SWIZZLE(0, 4, 3, 1, 0, 2) wyxz; \
  MTL_SWIZZLE(0, 4, 3, 1, 2, 0) wyzx; \
  MTL_SWIZZLE(0, 4, 3, 2, 0, 1) wzxy; \
  MTL_SWIZZLE(0, 4, 3, 2, 1, 0) wzyx; \
  struct { T _at_wzzz[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 2) wzzz; }; \
  struct { T _at_wzzw[2]; MTL_SWIZZLE(2, 2, 3, 2, 2, 3) wzzw; }; \
  struct { T _at_wzwz[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 2) wzwz; }; \
  struct { T _at_wzww[2]; MTL_SWIZZLE(2, 2, 3, 2, 3, 3) wzww; }; \
  struct { T _at_wwzz[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 2) wwzz; }; \
  struct { T _at_wwzw[2]; MTL_SWIZZLE(2, 2, 3, 3, 2, 3) wwzw; }; \
  struct { T _at_wwwz[2]; MTL_SWIZZLE(2, 2, 3, 3, 3, 2) wwwz; }; \
  struct { T _at_wwww[3]; MTL_SWIZZLE(3, 1, 3, 3, 3, 3) wwww; }; \
  MTL_SWIZZLE(0, 2, 0, 1) rg; \
  MTL_SWIZZLE(0, 2, 1, 0) gr; \
  struct { T _at_gb[1]; MTL_SWIZZLE(1, 2, 1, 2) gb; }; \
  struct { T _at_bg[1]; MTL_SWIZZLE(1, 2, 2, 1) bg; }; \
  struct { T _at_ba[2]; MTL_SWIZZLE(2, 2, 2, 3) ba; }; \
  struct { T _at_ab[2]; MTL_SWIZZLE(2, 2, 3, 2) ab; }; \
  MTL_SWIZZLE(0, 3, 0, 1, 2) rgb; \
  MTL_SWIZZLE(0, 3, 0, 2, 1) rbg; \
  MTL_SWIZZLE(0, 3, 1, 0, 2) grb; \
  MTL_SWIZZLE(0, 3, 1, 2, 0) gbr; \
  struct { T _at_gba[1]; MTL_SWIZZLE(1, 3, 1, 2, 3) gba; }; \
  struct { T _at_gab[1]; MTL_SWIZZLE(1, 3, 1, 3, 2) gab; }; \
  MTL_SWIZZLE(0, 3, 2, 0, 1) brg; \
  MTL_SWIZZLE(0, 3, 2, 1, 0) bgr; \
  struct { T _at_bga[1]; MTL_SWIZZLE(1, 3, 2, 1, 3) bga; }; \
  struct { T _at_bag[1]; MTL_SWIZZLE(1, 3, 2, 3, 1) bag; }; \
  struct { T _at_agb[1]; MTL_SWIZZLE(1, 3, 3, 1, 2) agb; }; \
  struct { T _at_abg[1]; MTL_SWIZZLE(1, 3, 3, 2, 1) abg; }; \
  MTL_SWIZZLE(0, 4, 0, 1, 2, 3) rgba; \
  MTL_SWIZZLE(0, 4, 0, 1, 3, 2) rgab; \
  MTL_SWIZZLE(0, 4, 0, 2, 1, 3) rbga; \
  MTL_SWIZZLE(0, 4, 0, 2, 3, 1) rbag; \
  MTL_SWIZZLE(0, 4, 0, 3, 1, 2) ragb; \
  MTL_SWIZZLE(0, 4, 0, 3, 2, 1) rabg; \
  MTL_SWIZZLE(0, 4, 1, 0, 2, 3) grba; \
  MTL_SWIZZLE(0, 4, 1, 0, 3, 2) grab; \
  MTL_SWIZZLE(0, 4, 1, 2, 0, 3) gbra; \
  MTL_SWIZZLE(0, 4, 1, 2, 3, 0) gbar; \
  MTL_SWIZZLE(0, 4, 1, 3, 0, 2) garb; \
  MTL_SWIZZLE(0, 4, 1, 3, 2, 0) gabr; \
  MTL_SWIZZLE(0, 4, 2, 0, 1, 3) brga; \
  MTL_SWIZZLE(0, 4, 2, 0, 3, 1) brag; \
  MTL_SWIZZLE(0, 4, 2, 1, 0, 3) bgra; \
  MTL_SWIZZLE(0, 4, 2, 1, 3, 0) bgar; \
  MTL_SWIZZLE(0, 4, 2, 3, 0, 1) barg; \
  MTL_SWIZZLE(0, 4, 2, 3, 1, 0) bagr; \
  MTL_SWIZZLE(0, 4, 3, 0, 1, 2) argb; \
  MTL_SWIZZLE(0, 4, 3, 0, 2, 1) arbg; \
  MTL_SWIZZLE(0, 4, 3, 1, 0, 2) agrb; \
  MTL_SWIZZLE(0, 4, 3, 1, 2, 0) agbr; \
  MTL_SWIZZLE(0, 4, 3, 2, 0, 1) abrg; \
  MTL_SWIZZLE(0, 4, 3, 2, 1, 0) abgr; \


namespace bases {
template <class T, int N, std::size_t Align> struct vec_storage;
template <class T, std::size_t Align> struct alignas(Align) vec_storage<T, 2, Align> {
  union { T v[2]; struct { T x, y; }; struct { T r, g; }; MTL_SWIZZLES_2 };
};
template <class T, std::size_t Align> struct alignas(Align) vec_storage<T, 3, Align> {
  union { T v[3]; struct { T x, y, z; }; struct { T r, g, b; }; MTL_SWIZZLES_3 };
};
template <class T, std::size_t Align> struct alignas(Align) vec_storage<T, 4, Align> {
  union { T v[4]; struct { T x, y, z, w; }; struct { T r, g, b, a; }; MTL_SWIZZLES_4 };
};
}  // namespace bases
#undef MTL_SWIZZLE
#undef MTL_SWIZZLES_2
#undef MTL_SWIZZLES_3
#undef MTL_SWIZZLES_4
#if defined(__clang__)
#pragma clang diagnostic pop
#else
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------
// vec<T, N>: MSL vector.  3- and 4-component vectors are 4*sizeof(T) in size
// and alignment, 2-component ones 2*sizeof(T).
// ---------------------------------------------------------------------------
template <typename T, int N>
struct vec : bases::vec_storage<T, N, (N == 2 ? 2 : 4) * sizeof(T)> {
  static_assert(N >= 2 && N <= 4, "MSL vectors have 2, 3 or 4 components");
  using storage = bases::vec_storage<T, N, (N == 2 ? 2 : 4) * sizeof(T)>;
  using value_type = T;

  vec() = default;
  // Scalar broadcast is implicit in MSL (float4 v = 0.0f;).
  template <class U, detail::if_num<U> = 0>
  constexpr vec(U s) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(s); }
  // Component list: any mix of scalars and vectors adding up to N components.
  template <class A, class B, class... R, std::enable_if_t<detail::ncomp_sum<A, B, R...> == N, int> = 0>
  constexpr vec(const A& c0, const B& c1, const R&... cs) : storage{} {
    int i = 0;
    put(i, c0);
    put(i, c1);
    (put(i, cs), ...);
  }
  // Braces with scalars of one type: `uint4 v = {a, b, c};` sets the leading components and zeroes the rest,
  // and `float4 v = {1.0f};` is (1, 0, 0, 0), not a broadcast. (A parenthesised list must still give all N.)
  // More than N initialisers is a compile error in MSL; here it is caught when the vector is built.
  template <class U, detail::if_num<U> = 0>
  constexpr vec(std::initializer_list<U> list) : storage{} {
    if (list.size() > std::size_t(N)) __builtin_trap();  // excess initialisers: never drop them silently
    int i = 0;
    for (const U& u : list) this->v[i++] = T(u);
  }
  // Element-type conversion must be spelled out, as in MSL.
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit constexpr vec(const vec<U, N>& o) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(o.v[i]); }
  // half2(v.xy) with v a float4: an element conversion of a swizzle, spelled out as for vectors.
  template <class S, std::enable_if_t<is_swizzle<S>::value && detail::vshape<S>::n == N, int> = 0>
  explicit constexpr vec(const S& sw) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(sw[i]); }
  constexpr vec(const packed_vec<T, N>& p) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = p.v[i]; }
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit constexpr vec(const packed_vec<U, N>& p) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(p.v[i]); }

  constexpr T& operator[](int i) { return this->v[i]; }
  constexpr const T& operator[](int i) const { return this->v[i]; }

#define MTL_VEC_BINARY(op, fn)                                                              \
  friend constexpr vec operator op(vec lhs, const vec& rhs) {                               \
    for (int i = 0; i < N; ++i) lhs.v[i] = detail::fn(lhs.v[i], rhs.v[i]);                  \
    return lhs;                                                                             \
  }                                                                                         \
  constexpr vec& operator op##=(const vec& rhs) { return *this = *this op rhs; }
  MTL_VEC_BINARY(+, add_e)
  MTL_VEC_BINARY(-, sub_e)
  MTL_VEC_BINARY(*, mul_e)
  MTL_VEC_BINARY(/, div_e)
  MTL_VEC_BINARY(%, mod_e)
  MTL_VEC_BINARY(&, and_e)
  MTL_VEC_BINARY(|, or_e)
  MTL_VEC_BINARY(^, xor_e)
  MTL_VEC_BINARY(<<, shl_e)
  MTL_VEC_BINARY(>>, shr_e)
#undef MTL_VEC_BINARY

#define MTL_VEC_CMP(op)                                                                     \
  friend constexpr vec<bool, N> operator op(const vec& lhs, const vec& rhs) {               \
    vec<bool, N> res{};                                                                     \
    for (int i = 0; i < N; ++i) res.v[i] = bool(lhs.v[i] op rhs.v[i]);                      \
    return res;                                                                             \
  }
  MTL_VEC_CMP(==)
  MTL_VEC_CMP(!=)
  MTL_VEC_CMP(<)
  MTL_VEC_CMP(<=)
  MTL_VEC_CMP(>)
  MTL_VEC_CMP(>=)
  MTL_VEC_CMP(&&)
  MTL_VEC_CMP(||)
#undef MTL_VEC_CMP

  friend constexpr vec operator-(vec arg) { for (int i = 0; i < N; ++i) arg.v[i] = detail::neg_e(arg.v[i]); return arg; }
  friend constexpr vec operator+(vec arg) { return arg; }
  friend constexpr vec operator~(vec arg) { for (int i = 0; i < N; ++i) arg.v[i] = T(~arg.v[i]); return arg; }
  friend constexpr vec<bool, N> operator!(const vec& arg) {
    vec<bool, N> res{};
    for (int i = 0; i < N; ++i) res.v[i] = !arg.v[i];
    return res;
  }

 private:
  template <class X>
  constexpr void put(int& i, const X& src) {
    if constexpr (detail::vshape<X>::n == 0) this->v[i++] = T(src);
    else for (int k = 0; k < detail::vshape<X>::n; ++k) this->v[i++] = T(src[k]);
  }
};

// ---------------------------------------------------------------------------
// packed_vec<T, N>: N*sizeof(T) bytes, alignment of T.  Converts implicitly
// to/from vec<T, N>; arithmetic is forwarded to vec (results are vec).
// ---------------------------------------------------------------------------
template <typename T, int N>
struct packed_vec : bases::vec_storage<T, N, alignof(T)> {
  static_assert(N >= 2 && N <= 4, "MSL vectors have 2, 3 or 4 components");
  using storage = bases::vec_storage<T, N, alignof(T)>;
  using value_type = T;

  packed_vec() = default;
  template <class U, detail::if_num<U> = 0>
  constexpr packed_vec(U s) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(s); }
  template <class A, class B, class... R, std::enable_if_t<detail::ncomp_sum<A, B, R...> == N, int> = 0>
  constexpr packed_vec(const A& c0, const B& c1, const R&... cs) : storage{} { *this = vec<T, N>(c0, c1, cs...); }
  constexpr packed_vec(const vec<T, N>& o) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = o.v[i]; }
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit constexpr packed_vec(const vec<U, N>& o) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(o.v[i]); }
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit constexpr packed_vec(const packed_vec<U, N>& o) : storage{} { for (int i = 0; i < N; ++i) this->v[i] = T(o.v[i]); }

  constexpr T& operator[](int i) { return this->v[i]; }
  constexpr const T& operator[](int i) const { return this->v[i]; }

  // The exact-match templates beat vec's hidden friends (which would need a
  // user conversion of the packed operand), so mixed forms are unambiguous.
#define MTL_PACKED_BINARY(op)                                                               \
  friend constexpr auto operator op(const packed_vec& lhs, const packed_vec& rhs) {         \
    return vec<T, N>(lhs) op vec<T, N>(rhs);                                                \
  }                                                                                         \
  template <class B, detail::if_not_packed<B> = 0>                                          \
  friend constexpr auto operator op(const packed_vec& lhs, const B& rhs)->decltype(vec<T, N>(lhs) op rhs) { \
    return vec<T, N>(lhs) op rhs;                                                           \
  }                                                                                         \
  template <class A, detail::if_not_packed<A> = 0>                                          \
  friend constexpr auto operator op(const A& lhs, const packed_vec& rhs)->decltype(lhs op vec<T, N>(rhs)) { \
    return lhs op vec<T, N>(rhs);                                                           \
  }
  MTL_PACKED_BINARY(+)
  MTL_PACKED_BINARY(-)
  MTL_PACKED_BINARY(*)
  MTL_PACKED_BINARY(/)
  MTL_PACKED_BINARY(%)
  MTL_PACKED_BINARY(&)
  MTL_PACKED_BINARY(|)
  MTL_PACKED_BINARY(^)
  MTL_PACKED_BINARY(<<)
  MTL_PACKED_BINARY(>>)
  MTL_PACKED_BINARY(==)
  MTL_PACKED_BINARY(!=)
  MTL_PACKED_BINARY(<)
  MTL_PACKED_BINARY(<=)
  MTL_PACKED_BINARY(>)
  MTL_PACKED_BINARY(>=)
#undef MTL_PACKED_BINARY

#define MTL_PACKED_ASSIGN(op)                                                               \
  template <class B>                                                                        \
  constexpr auto operator op##=(const B& rhs)->decltype(vec<T, N>() op rhs, *this) {        \
    return *this = packed_vec(vec<T, N>(*this) op rhs);                                     \
  }
  MTL_PACKED_ASSIGN(+)
  MTL_PACKED_ASSIGN(-)
  MTL_PACKED_ASSIGN(*)
  MTL_PACKED_ASSIGN(/)
  MTL_PACKED_ASSIGN(%)
  MTL_PACKED_ASSIGN(&)
  MTL_PACKED_ASSIGN(|)
  MTL_PACKED_ASSIGN(^)
  MTL_PACKED_ASSIGN(<<)
  MTL_PACKED_ASSIGN(>>)
#undef MTL_PACKED_ASSIGN

  friend constexpr vec<T, N> operator-(const packed_vec& arg) { return -vec<T, N>(arg); }
  friend constexpr vec<T, N> operator~(const packed_vec& arg) { return ~vec<T, N>(arg); }
  friend constexpr vec<bool, N> operator!(const packed_vec& arg) { return !vec<T, N>(arg); }
};

// ---------------------------------------------------------------------------
// matrix<T, Cols, Rows>: column-major, m[i] is column i (a vec<T, Rows>).
// ---------------------------------------------------------------------------
template <typename T, int Cols, int Rows>
struct matrix {
  static_assert(Cols >= 2 && Cols <= 4 && Rows >= 2 && Rows <= 4, "MSL matrices are 2..4 x 2..4");
  using column_type = vec<T, Rows>;
  column_type columns[Cols];

  matrix() = default;
  // Diagonal matrix (identity * d).
  constexpr explicit matrix(T d) : columns{} {
    for (int c = 0; c < Cols && c < Rows; ++c) columns[c][c] = d;
  }
  // One vector per column.
  template <class... C, std::enable_if_t<sizeof...(C) == Cols && ((detail::vshape<C>::n == Rows) && ...) &&
                                             (std::is_convertible<C, column_type>::value && ...), int> = 0>
  constexpr matrix(const C&... c) : columns{column_type(c)...} {}
  // Cols*Rows scalars, column by column.
  template <class... S, std::enable_if_t<sizeof...(S) == Cols * Rows && ((detail::vshape<S>::n == 0) && ...), int> = 0>
  constexpr matrix(const S&... s) : columns{} {
    const T vals[] = {T(s)...};
    for (int c = 0; c < Cols; ++c)
      for (int r = 0; r < Rows; ++r) columns[c][r] = vals[c * Rows + r];
  }
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit constexpr matrix(const matrix<U, Cols, Rows>& o) : columns{} {
    for (int c = 0; c < Cols; ++c) columns[c] = column_type(o.columns[c]);
  }

  constexpr column_type& operator[](int i) { return columns[i]; }
  constexpr const column_type& operator[](int i) const { return columns[i]; }

  constexpr matrix& operator+=(const matrix& o) { for (int c = 0; c < Cols; ++c) columns[c] += o.columns[c]; return *this; }
  constexpr matrix& operator-=(const matrix& o) { for (int c = 0; c < Cols; ++c) columns[c] -= o.columns[c]; return *this; }
  constexpr matrix& operator*=(T s) { for (int c = 0; c < Cols; ++c) columns[c] *= s; return *this; }
  constexpr matrix& operator*=(const matrix<T, Cols, Cols>& o);  // square only (defined below)
};

template <class T, int C, int R>
constexpr vec<T, R> operator*(const matrix<T, C, R>& m, const vec<T, C>& v) {
  vec<T, R> r = m[0] * v[0];
  for (int c = 1; c < C; ++c) r += m[c] * v[c];
  return r;
}
template <class T, int C, int R>
constexpr vec<T, C> operator*(const vec<T, R>& v, const matrix<T, C, R>& m) {
  vec<T, C> out{};
  for (int c = 0; c < C; ++c) {
    T s = v[0] * m[c][0];
    for (int r = 1; r < R; ++r) s = s + v[r] * m[c][r];
    out[c] = s;
  }
  return out;
}
template <class T, int K, int C, int R>
constexpr matrix<T, C, R> operator*(const matrix<T, K, R>& a, const matrix<T, C, K>& b) {
  matrix<T, C, R> out{};
  for (int c = 0; c < C; ++c) out[c] = a * b[c];
  return out;
}
template <class T, int C, int R>
constexpr matrix<T, C, R> operator*(matrix<T, C, R> m, detail::identity_t<T> s) { return m *= s; }
template <class T, int C, int R>
constexpr matrix<T, C, R> operator*(detail::identity_t<T> s, matrix<T, C, R> m) { return m *= s; }
template <class T, int C, int R>
constexpr matrix<T, C, R> operator+(matrix<T, C, R> a, const matrix<T, C, R>& b) { return a += b; }
template <class T, int C, int R>
constexpr matrix<T, C, R> operator-(matrix<T, C, R> a, const matrix<T, C, R>& b) { return a -= b; }
template <class T, int C, int R>
constexpr matrix<T, C, R> operator-(matrix<T, C, R> a) { for (int c = 0; c < C; ++c) a[c] = -a[c]; return a; }
template <class T, int C, int R>
constexpr matrix<T, C, R>& matrix<T, C, R>::operator*=(const matrix<T, C, C>& o) { return *this = *this * o; }

template <class T, int C, int R>
constexpr matrix<T, R, C> transpose(const matrix<T, C, R>& m) {
  matrix<T, R, C> t{};
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) t[r][c] = m[c][r];
  return t;
}

template <class T>
constexpr T determinant(const matrix<T, 2, 2>& m) { return m[0][0] * m[1][1] - m[1][0] * m[0][1]; }
template <class T>
constexpr T determinant(const matrix<T, 3, 3>& m) {
  return m[0][0] * (m[1][1] * m[2][2] - m[2][1] * m[1][2]) -
         m[1][0] * (m[0][1] * m[2][2] - m[2][1] * m[0][2]) +
         m[2][0] * (m[0][1] * m[1][2] - m[1][1] * m[0][2]);
}
template <class T>
constexpr T determinant(const matrix<T, 4, 4>& m) {
  // Laplace expansion along column 0 using 2x2 minors of columns 2 and 3.
  const T s0 = m[2][2] * m[3][3] - m[3][2] * m[2][3], s1 = m[2][1] * m[3][3] - m[3][1] * m[2][3];
  const T s2 = m[2][1] * m[3][2] - m[3][1] * m[2][2], s3 = m[2][0] * m[3][3] - m[3][0] * m[2][3];
  const T s4 = m[2][0] * m[3][2] - m[3][0] * m[2][2], s5 = m[2][0] * m[3][1] - m[3][0] * m[2][1];
  const T c0 = m[1][1] * s0 - m[1][2] * s1 + m[1][3] * s2;
  const T c1 = m[1][0] * s0 - m[1][2] * s3 + m[1][3] * s4;
  const T c2 = m[1][0] * s1 - m[1][1] * s3 + m[1][3] * s5;
  const T c3 = m[1][0] * s2 - m[1][1] * s4 + m[1][2] * s5;
  return m[0][0] * c0 - m[0][1] * c1 + m[0][2] * c2 - m[0][3] * c3;
}

// ---------------------------------------------------------------------------
// metal::array
// ---------------------------------------------------------------------------
template <typename T, std::size_t N>
struct array {
  T elems[N > 0 ? N : 1];
  constexpr T& operator[](std::size_t i) { return elems[i]; }
  constexpr const T& operator[](std::size_t i) const { return elems[i]; }
  static constexpr std::size_t size() { return N; }
  static constexpr bool empty() { return N == 0; }
  constexpr T* data() { return elems; }
  constexpr const T* data() const { return elems; }
  constexpr T* begin() { return elems; }
  constexpr const T* begin() const { return elems; }
  constexpr T* end() { return elems + N; }
  constexpr const T* end() const { return elems + N; }
  constexpr T& front() { return elems[0]; }
  constexpr const T& front() const { return elems[0]; }
  constexpr T& back() { return elems[N - 1]; }
  constexpr const T& back() const { return elems[N - 1]; }
};

// ---------------------------------------------------------------------------
// Type traits: std where std is already right, extended for half/bfloat/vec.
// ---------------------------------------------------------------------------
using std::add_const;
using std::add_cv;
using std::add_lvalue_reference;
using std::add_pointer;
using std::add_rvalue_reference;
using std::add_volatile;
using std::bool_constant;
using std::common_type;
using std::common_type_t;
using std::conditional;
using std::conditional_t;
using std::conjunction;
using std::conjunction_v;
using std::decay;
using std::decay_t;
using std::declval;
using std::disjunction;
using std::disjunction_v;
using std::enable_if;
using std::enable_if_t;
using std::false_type;
using std::integral_constant;
using std::is_base_of;
using std::is_base_of_v;
using std::is_class;
using std::is_class_v;
using std::is_const;
using std::is_const_v;
using std::is_constructible;
using std::is_constructible_v;
using std::is_convertible;
using std::is_convertible_v;
using std::is_enum;
using std::is_enum_v;
using std::is_pointer;
using std::is_pointer_v;
using std::is_reference;
using std::is_reference_v;
using std::is_same;
using std::is_same_v;
using std::is_trivially_copyable;
using std::is_trivially_copyable_v;
using std::is_trivially_default_constructible;
using std::is_trivially_default_constructible_v;
using std::is_void;
using std::is_void_v;
using std::is_volatile;
using std::is_volatile_v;
using std::negation;
using std::negation_v;
using std::remove_const;
using std::remove_const_t;
using std::remove_cv;
using std::remove_cv_t;
using std::remove_extent;
using std::remove_extent_t;
using std::remove_pointer;
using std::remove_pointer_t;
using std::remove_reference;
using std::remove_reference_t;
using std::remove_volatile;
using std::remove_volatile_t;
using std::true_type;
using std::underlying_type;
using std::underlying_type_t;

// Metal's is_floating_point and is_integral hold for vectors of such elements too (is_floating_point_v<half2>);
// is_scalar tells the two apart.
template <class T> struct is_floating_point : bool_constant<std::is_floating_point<T>::value || detail::is_fp16<remove_cv_t<T>>::value> {};
template <class T, int N> struct is_floating_point<vec<T, N>> : is_floating_point<T> {};
template <class T, int N> struct is_floating_point<const vec<T, N>> : is_floating_point<T> {};
template <class T> struct is_integral : std::is_integral<T> {};
template <class T, int N> struct is_integral<vec<T, N>> : std::is_integral<T> {};
template <class T, int N> struct is_integral<const vec<T, N>> : std::is_integral<T> {};
template <class T> constexpr bool is_integral_v = is_integral<T>::value;
template <class T> struct is_arithmetic : bool_constant<std::is_arithmetic<T>::value || detail::is_fp16<remove_cv_t<T>>::value> {};
template <class T> struct is_scalar : bool_constant<std::is_scalar<T>::value || detail::is_fp16<remove_cv_t<T>>::value> {};
template <class T> struct is_signed : bool_constant<std::is_signed<T>::value || detail::is_fp16<remove_cv_t<T>>::value> {};
using std::is_unsigned;
using std::is_unsigned_v;
template <class T> constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T> constexpr bool is_arithmetic_v = is_arithmetic<T>::value;
template <class T> constexpr bool is_scalar_v = is_scalar<T>::value;
template <class T> constexpr bool is_signed_v = is_signed<T>::value;

template <class T> struct is_vector : false_type {};
template <class T, int N> struct is_vector<vec<T, N>> : true_type {};
template <class T> struct is_vector<const T> : is_vector<T> {};
template <class T> struct is_vector<volatile T> : is_vector<T> {};
template <class T> struct is_vector<const volatile T> : is_vector<T> {};
template <class T> constexpr bool is_vector_v = is_vector<T>::value;

// Number of components: N for vectors, 1 for scalars.
template <class T> struct vec_elements : integral_constant<int, 1> {};
template <class T, int N> struct vec_elements<vec<T, N>> : integral_constant<int, N> {};
template <class T, int N> struct vec_elements<packed_vec<T, N>> : integral_constant<int, N> {};
template <class T> constexpr int vec_elements_v = vec_elements<T>::value;

template <class T> struct make_unsigned : std::make_unsigned<T> {};
template <class T, int N> struct make_unsigned<vec<T, N>> { using type = vec<std::make_unsigned_t<T>, N>; };
template <class T> struct make_signed : std::make_signed<T> {};
template <class T, int N> struct make_signed<vec<T, N>> { using type = vec<std::make_signed_t<T>, N>; };
template <class T> using make_unsigned_t = typename make_unsigned<T>::type;
template <class T> using make_signed_t = typename make_signed<T>::type;

// Element type of a vector (the type itself for scalars).
template <class T> struct make_scalar { using type = T; };
template <class T, int N> struct make_scalar<vec<T, N>> { using type = T; };
template <class T, int N> struct make_scalar<packed_vec<T, N>> { using type = T; };
template <class T> using make_scalar_t = typename make_scalar<T>::type;

// ---------------------------------------------------------------------------
// numeric_limits
// ---------------------------------------------------------------------------
template <class T> struct numeric_limits : std::numeric_limits<T> {};

namespace detail {
template <class T, uint16_t Min, uint16_t Max, uint16_t Eps, uint16_t Inf, uint16_t QNaN, uint16_t SNaN, int Digits,
          int Digits10, int MaxDigits10, int MinExp, int MinExp10, int MaxExp, int MaxExp10>
struct fp16_limits {
  static constexpr bool is_specialized = true;
  static constexpr T min() noexcept { return T::from_bits(Min); }
  static constexpr T max() noexcept { return T::from_bits(Max); }
  static constexpr T lowest() noexcept { return T::from_bits(uint16_t(Max | 0x8000u)); }
  static constexpr T epsilon() noexcept { return T::from_bits(Eps); }
  static constexpr T round_error() noexcept { return T(0.5f); }
  static constexpr T infinity() noexcept { return T::from_bits(Inf); }
  static constexpr T quiet_NaN() noexcept { return T::from_bits(QNaN); }
  static constexpr T signaling_NaN() noexcept { return T::from_bits(SNaN); }
  static constexpr T denorm_min() noexcept { return T::from_bits(1); }
  static constexpr int digits = Digits;
  static constexpr int digits10 = Digits10;
  static constexpr int max_digits10 = MaxDigits10;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool is_exact = false;
  static constexpr int radix = 2;
  static constexpr int min_exponent = MinExp;
  static constexpr int min_exponent10 = MinExp10;
  static constexpr int max_exponent = MaxExp;
  static constexpr int max_exponent10 = MaxExp10;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr bool has_signaling_NaN = true;
  static constexpr std::float_denorm_style has_denorm = std::denorm_present;
  static constexpr bool has_denorm_loss = false;
  static constexpr bool is_iec559 = true;
  static constexpr bool is_bounded = true;
  static constexpr bool is_modulo = false;
  static constexpr bool traps = false;
  static constexpr bool tinyness_before = false;
  static constexpr std::float_round_style round_style = std::round_to_nearest;
};
}  // namespace detail

template <> struct numeric_limits<half>
    : detail::fp16_limits<half, 0x0400, 0x7bff, 0x1400, 0x7c00, 0x7e00, 0x7d00, 11, 3, 5, -13, -4, 16, 4> {};
template <> struct numeric_limits<bfloat>
    : detail::fp16_limits<bfloat, 0x0080, 0x7f7f, 0x3c00, 0x7f80, 0x7fc0, 0x7fa0, 8, 2, 4, -125, -37, 128, 38> {};

// ---------------------------------------------------------------------------
// as_type: reinterpret the bits of a value of the same size.
// ---------------------------------------------------------------------------
template <class To, class From>
constexpr To as_type(const From& from) {
  // A swizzle's bytes are the vector's, in storage order: reinterpret the swizzled value instead.
  if constexpr (is_swizzle<From>::value) {
    return as_type<To>(vec<detail::elem_t<From>, detail::vshape<From>::n>(from));
  } else {
    static_assert(sizeof(To) == sizeof(From), "as_type<To>(from): sizes must match");
    return __builtin_bit_cast(To, from);
  }
}

// ---------------------------------------------------------------------------
// min / max (scalars and vectors; mixed scalar types promote, see
// detail::common).  Float versions are fmin/fmax.
// ---------------------------------------------------------------------------
// Apple declares min/max as one non-template overload per type. So a same-type scalar call picks a non-template
// here too (it beats a user's `template <class T> T max(T, T)`, as Apple's does), and the generic template, which
// handles mixed and vector operands, has an empty trailing pack: it is less specialised than any user template
// of two parameters (`template <class T, class U> T min(T, U)`) instead of tying with it.
template <class X, class Y, class... None, class R = detail::lib_t<X, Y>, std::enable_if_t<sizeof...(None) == 0, int> = 0>
constexpr R min(X x, Y y, None...) { return detail::vmap<R>([](auto a, auto b) { return detail::min_e(a, b); }, R(x), R(y)); }
template <class X, class Y, class... None, class R = detail::lib_t<X, Y>, std::enable_if_t<sizeof...(None) == 0, int> = 0>
constexpr R max(X x, Y y, None...) { return detail::vmap<R>([](auto a, auto b) { return detail::max_e(a, b); }, R(x), R(y)); }
#define MTL_MINMAX(T)                                                \
  constexpr T min(T x, T y) { return detail::min_e<T>(x, y); }      \
  constexpr T max(T x, T y) { return detail::max_e<T>(x, y); }
MTL_MINMAX(float)
MTL_MINMAX(half)
MTL_MINMAX(char)
MTL_MINMAX(uchar)
MTL_MINMAX(short)
MTL_MINMAX(ushort)
MTL_MINMAX(int)
MTL_MINMAX(uint)
MTL_MINMAX(long)
MTL_MINMAX(ulong)
#undef MTL_MINMAX

}  // namespace metal

using metal::vec;
// as_type is a builtin in MSL, usable without metal:: or a using-directive.
using metal::as_type;

// ---------------------------------------------------------------------------
// Global vector / packed / matrix type names.
// ---------------------------------------------------------------------------
#define MTL_VEC_TYPEDEFS(T, name)           \
  typedef metal::vec<T, 2> name##2;         \
  typedef metal::vec<T, 3> name##3;         \
  typedef metal::vec<T, 4> name##4;
MTL_VEC_TYPEDEFS(bool, bool)
MTL_VEC_TYPEDEFS(char, char)
MTL_VEC_TYPEDEFS(uchar, uchar)
MTL_VEC_TYPEDEFS(short, short)
MTL_VEC_TYPEDEFS(ushort, ushort)
MTL_VEC_TYPEDEFS(int, int)
MTL_VEC_TYPEDEFS(uint, uint)
MTL_VEC_TYPEDEFS(long, long)
MTL_VEC_TYPEDEFS(ulong, ulong)
MTL_VEC_TYPEDEFS(half, half)
MTL_VEC_TYPEDEFS(bfloat, bfloat)
MTL_VEC_TYPEDEFS(float, float)
#undef MTL_VEC_TYPEDEFS

#define MTL_PACKED_TYPEDEFS(T, name)             \
  typedef metal::packed_vec<T, 2> packed_##name##2; \
  typedef metal::packed_vec<T, 3> packed_##name##3; \
  typedef metal::packed_vec<T, 4> packed_##name##4;
MTL_PACKED_TYPEDEFS(char, char)
MTL_PACKED_TYPEDEFS(uchar, uchar)
MTL_PACKED_TYPEDEFS(short, short)
MTL_PACKED_TYPEDEFS(ushort, ushort)
MTL_PACKED_TYPEDEFS(int, int)
MTL_PACKED_TYPEDEFS(uint, uint)
MTL_PACKED_TYPEDEFS(half, half)
MTL_PACKED_TYPEDEFS(bfloat, bfloat)
MTL_PACKED_TYPEDEFS(float, float)
#undef MTL_PACKED_TYPEDEFS

#define MTL_MATRIX_TYPEDEFS(T)                                                               \
  typedef metal::matrix<T, 2, 2> T##2x2;                                                     \
  typedef metal::matrix<T, 2, 3> T##2x3;                                                     \
  typedef metal::matrix<T, 2, 4> T##2x4;                                                     \
  typedef metal::matrix<T, 3, 2> T##3x2;                                                     \
  typedef metal::matrix<T, 3, 3> T##3x3;                                                     \
  typedef metal::matrix<T, 3, 4> T##3x4;                                                     \
  typedef metal::matrix<T, 4, 2> T##4x2;                                                     \
  typedef metal::matrix<T, 4, 3> T##4x3;                                                     \
  typedef metal::matrix<T, 4, 4> T##4x4;
MTL_MATRIX_TYPEDEFS(float)
MTL_MATRIX_TYPEDEFS(half)
#undef MTL_MATRIX_TYPEDEFS

// ---------------------------------------------------------------------------
// Layout guarantees the runtime relies on (buffers are shared as raw bytes).
// ---------------------------------------------------------------------------
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2 layout");
static_assert(sizeof(float3) == 16 && alignof(float3) == 16, "float3 layout");
static_assert(sizeof(half3) == 8 && alignof(half3) == 8, "half3 layout");
static_assert(sizeof(uchar3) == 4 && alignof(uchar3) == 4, "uchar3 layout");
static_assert(sizeof(packed_float3) == 12 && alignof(packed_float3) == 4, "packed_float3 layout");
static_assert(sizeof(float3x3) == 48 && alignof(float3x3) == 16, "float3x3 layout");
static_assert(std::is_trivially_copyable<float3x3>::value && std::is_trivially_default_constructible<float3x3>::value &&
              std::is_trivially_copyable<packed_float3>::value && std::is_trivially_default_constructible<packed_float3>::value,
              "vectors and matrices must be trivial (stored in unions, copied as bytes)");
