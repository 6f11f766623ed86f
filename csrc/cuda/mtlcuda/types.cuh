// MSL's scalar and vector types for kernels translated to CUDA (compiled by NVRTC with -default-device).
//
// CUDA has its own float4, uint3, char2, ... (plain structs with no arithmetic) and, through cuda_fp16.h, a
// `half`. The translation therefore renames MSL's type names in the kernel text (half -> mtl_half, float4 ->
// mtl_float4, uint -> mtl_uint); the typedefs at the end of this file give those names their MSL meaning.
// half and bfloat are wrapped so that arithmetic follows MSL's promotion rules: half op half -> half, half op
// float -> float, half op int -> half.
#pragma once

namespace mtl {

// ---- the few type traits the shim needs (NVRTC has no <type_traits> without extra include paths) ----

template <bool B, class T = int> struct enable_if {};
template <class T> struct enable_if<true, T> { typedef T type; };

template <class T> struct is_intlike { static constexpr bool value = false; };
#define MTL_INTLIKE(T) \
  template <> struct is_intlike<T> { static constexpr bool value = true; };
MTL_INTLIKE(bool)
MTL_INTLIKE(char)
MTL_INTLIKE(signed char)
MTL_INTLIKE(unsigned char)
MTL_INTLIKE(short)
MTL_INTLIKE(unsigned short)
MTL_INTLIKE(int)
MTL_INTLIKE(unsigned int)
MTL_INTLIKE(long)
MTL_INTLIKE(unsigned long)
MTL_INTLIKE(long long)
MTL_INTLIKE(unsigned long long)
#undef MTL_INTLIKE

template <class T> struct remove_reference { typedef T type; };
template <class T> struct remove_reference<T&> { typedef T type; };
template <class T> struct remove_reference<T&&> { typedef T type; };
template <class T> struct is_pointer { static constexpr bool value = false; };
template <class T> struct is_pointer<T*> { static constexpr bool value = true; };
template <class T> struct is_pointer<T* const> { static constexpr bool value = true; };
template <class T> struct is_reference { static constexpr bool value = false; };
template <class T> struct is_reference<T&> { static constexpr bool value = true; };
template <class T> struct identity { typedef T type; };
template <class A, class B> struct is_same_type { static constexpr bool value = false; };
template <class A> struct is_same_type<A, A> { static constexpr bool value = true; };

struct bits_tag {};

// ---- 16-bit floats: conversions by PTX at run time, in software during constant evaluation (real headers use
// half arithmetic in static_assert and constexpr initializers: MLX's complex.h); bfloat rounds to nearest even ----

inline unsigned short f32_to_f16_hw(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
inline float f16_to_f32_hw(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
constexpr unsigned short f32_to_f16_soft(float f) {
  const unsigned x = __builtin_bit_cast(unsigned, f);
  const unsigned sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (unsigned short)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // rounds to 65520 or more: infinity
  unsigned r = 0, rem = 0, tie = 0;
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
    const int shift = 126 - int(ax >> 23);
    if (shift > 25) return (unsigned short)sign;
    const unsigned mant = (ax & 0x7fffffu) | 0x800000u;
    r = mant >> shift, rem = mant & ((1u << shift) - 1u), tie = 1u << (shift - 1);
  } else {
    r = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu, tie = 0x1000u;
  }
  if (rem > tie || (rem == tie && (r & 1u))) ++r;
  return (unsigned short)(sign | r);
}
constexpr float f16_to_f32_soft(unsigned short h) {
  const unsigned sign = unsigned(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 31) return __builtin_bit_cast(float, sign | 0x7f800000u | (m << 13));
  if (e == 0) return (sign ? -1.0f : 1.0f) * float(m) * 5.9604644775390625e-8f;  // m * 2^-24
  return __builtin_bit_cast(float, sign | ((e + 112u) << 23) | (m << 13));
}
constexpr unsigned short f32_to_f16(float f) {
  if (__builtin_is_constant_evaluated()) return f32_to_f16_soft(f);
  return f32_to_f16_hw(f);
}
constexpr float f16_to_f32(unsigned short h) {
  if (__builtin_is_constant_evaluated()) return f16_to_f32_soft(h);
  return f16_to_f32_hw(h);
}
constexpr unsigned short f32_to_bf16_soft(float f) {
  const unsigned u = __builtin_bit_cast(unsigned, f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  // quiet NaN
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// The GPU's own conversion (sm_80 on), as for half: round to nearest even, NaN stays NaN (the canonical one, where
// the software form keeps the payload: no test or kernel depends on a NaN's bits). Metal's bfloat(float) is a
// language conversion, compiled to the GPU's instruction where it has one, so the lane does the same; before, the
// software form's eight integer operations per value cost 16-bit kernels registers (spills at the 64-register
// bound of a 1024-thread entry) that half, converted by PTX, did not.
inline unsigned short f32_to_bf16_hw(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned short b;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
  return b;
#else
  return f32_to_bf16_soft(f);
#endif
}
constexpr unsigned short f32_to_bf16(float f) {
  if (__builtin_is_constant_evaluated()) return f32_to_bf16_soft(f);
  return f32_to_bf16_hw(f);
}
constexpr float bf16_to_f32(unsigned short b) { return __builtin_bit_cast(float, unsigned(b) << 16); }

// Arithmetic of a 16-bit float type T, computed in float and rounded once (exact for one +, -, *, /: float has
// more than twice the bits of either format).
template <class T> struct fp16_ops {
#define MTL_FP16_ARITH(op)                                                                            \
  friend constexpr T operator op(T a, T b) { return T(float(a) op float(b)); }                        \
  friend constexpr float operator op(T a, float b) { return float(a) op b; }                          \
  friend constexpr float operator op(float a, T b) { return a op float(b); }                          \
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>                              \
  friend constexpr T operator op(T a, I b) { return T(float(a) op float(b)); }                        \
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>                              \
  friend constexpr T operator op(I a, T b) { return T(float(a) op float(b)); }                        \
  friend T& operator op##=(T& a, float b) { return a = T(float(a) op b); }
  MTL_FP16_ARITH(+)
  MTL_FP16_ARITH(-)
  MTL_FP16_ARITH(*)
  MTL_FP16_ARITH(/)
#undef MTL_FP16_ARITH
#define MTL_FP16_COMPARE(op)                                                                          \
  friend constexpr bool operator op(T a, T b) { return float(a) op float(b); }                        \
  friend constexpr bool operator op(T a, float b) { return float(a) op b; }                           \
  friend constexpr bool operator op(float a, T b) { return a op float(b); }                           \
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>                              \
  friend constexpr bool operator op(T a, I b) { return float(a) op float(b); }                        \
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>                              \
  friend constexpr bool operator op(I a, T b) { return float(a) op float(b); }
  MTL_FP16_COMPARE(==)
  MTL_FP16_COMPARE(!=)
  MTL_FP16_COMPARE(<)
  MTL_FP16_COMPARE(<=)
  MTL_FP16_COMPARE(>)
  MTL_FP16_COMPARE(>=)
#undef MTL_FP16_COMPARE
  friend constexpr T operator-(T a) { return T((unsigned short)(a.bits ^ 0x8000u), bits_tag{}); }
  friend constexpr T operator+(T a) { return a; }
  friend T& operator++(T& a) { return a += 1.0f; }
  friend T& operator--(T& a) { return a -= 1.0f; }
};

// Conversions out of half/bfloat: implicit to float only, explicit to integers. An implicit conversion to int would
// make `cond ? 0 : h` ambiguous (int converts to half as well); MSL gives that expression type half. The float
// conversion is a template restricted to float so that it cannot be followed by float -> int; so is the one to bool
// (MSL converts half to bool implicitly: PyTorch's DecodeAttention.h assigns a half mask element to a bool).
#define MTL_FP16_CONVERSIONS(to_float)                                                                \
  template <class F, typename enable_if<is_same_type<F, float>::value, int>::type = 0>               \
  constexpr operator F() const { return to_float; }                                                   \
  template <class B, typename enable_if<is_same_type<B, bool>::value, int>::type = 0>                \
  constexpr operator B() const { return to_float != 0.0f; }                                           \
  template <class I, typename enable_if<is_intlike<I>::value && !is_same_type<I, bool>::value, int>::type = 0> \
  explicit constexpr operator I() const { return I(to_float); }

// Trivially default constructible, so arrays of them can live in __shared__ memory.
struct half_t : fp16_ops<half_t> {
  unsigned short bits;
  half_t() = default;
  constexpr half_t(unsigned short b, bits_tag) : bits(b) {}
  constexpr half_t(float f) : bits(f32_to_f16(f)) {}
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>
  constexpr half_t(I i) : bits(f32_to_f16(float(i))) {}
  MTL_FP16_CONVERSIONS(f16_to_f32(bits))
};

struct bfloat_t : fp16_ops<bfloat_t> {
  unsigned short bits;
  bfloat_t() = default;
  constexpr bfloat_t(unsigned short b, bits_tag) : bits(b) {}
  constexpr bfloat_t(float f) : bits(f32_to_bf16(f)) {}
  template <class I, typename enable_if<is_intlike<I>::value>::type = 0>
  constexpr bfloat_t(I i) : bits(f32_to_bf16(float(i))) {}
  MTL_FP16_CONVERSIONS(bf16_to_f32(bits))
};

// ---- vectors: MSL sizes and alignment (a 3-vector takes the room of a 4-vector), .xyzw / .rgba, swizzles, [] ----

template <class T, int N> struct vec;

// Multi-component swizzles (v.xy, v.zyx, v.xxyy, v.bgr), as in the emulator's csrc/emu/mtl/types.h: union members
// of type swizzle<V, T, Lo, Span, I...>, holding exactly the components Lo .. Lo+Span-1 and sitting at their
// offset. Reading converts to V = vec<T, sizeof...(I)>; without repeated components a swizzle is assignable
// (v.xy = w, v.zw += u). Copying a swizzle onto one of the same type (a.yz = b.yz) is the trivial copy of that span,
// which is the component-wise assignment: that is why only swizzles whose components are contiguous are members
// (v.xz, v.xw are not, and fail to compile instead of copying a wrong span).
template <int... I> struct distinct_lanes { static constexpr bool value = true; };
template <int A, int... R> struct distinct_lanes<A, R...> {
  static constexpr bool value = ((A != R) && ...) && distinct_lanes<R...>::value;
};
template <class V, class T, int Lo, int Span, int... I> struct swizzle {
  T s[Span];
  constexpr operator V() const { return V(s[I - Lo]...); }
  constexpr T operator[](int i) const {
    constexpr int idx[] = {I...};
    return s[idx[i] - Lo];
  }
  template <class X, bool D = distinct_lanes<I...>::value, typename enable_if<D>::type = 0>
  swizzle& operator=(const X& x) {
    const V val(x);
    int k = 0;
    ((s[I - Lo] = val.v[k++]), ...);
    return *this;
  }
#define MTL_SWIZZLE_ASSIGN(op)                                                                   \
  template <class X, bool D = distinct_lanes<I...>::value, typename enable_if<D>::type = 0>       \
  swizzle& operator op##=(const X& x) {                                                           \
    return *this = V(V(*this) op x);                                                              \
  }
  MTL_SWIZZLE_ASSIGN(+)
  MTL_SWIZZLE_ASSIGN(-)
  MTL_SWIZZLE_ASSIGN(*)
  MTL_SWIZZLE_ASSIGN(/)
#undef MTL_SWIZZLE_ASSIGN
};
template <class X> struct swizzle_of { static constexpr bool value = false; };
template <class V, class T, int Lo, int Span, int... I> struct swizzle_of<swizzle<V, T, Lo, Span, I...>> {
  static constexpr bool value = true;
  typedef V type;
};
// The vector a swizzle reads as (the type itself otherwise), and how many components a constructor argument gives.
template <class X, bool = swizzle_of<X>::value> struct as_vector { typedef X type; };
template <class X> struct as_vector<X, true> { typedef typename swizzle_of<X>::type type; };
template <class X> struct lane_count { static constexpr int value = 1; };
template <class T, int N> struct lane_count<vec<T, N>> { static constexpr int value = N; };
template <class V, class T, int Lo, int Span, int... I> struct lane_count<swizzle<V, T, Lo, Span, I...>> {
  static constexpr int value = int(sizeof...(I));
};

template <int... I> struct count_lanes { static constexpr int value = int(sizeof...(I)); };
#define MTL_SWIZZLE(lo, span, ...) \
  ::mtl::swizzle<::mtl::vec<T, ::mtl::count_lanes<__VA_ARGS__>::value>, T, lo, span, __VA_ARGS__>
#include "swizzles.cuh"

template <class T, int N> struct vec_storage;
template <class T> struct alignas(2 * sizeof(T)) vec_storage<T, 2> {
  union { T v[2]; struct { T x, y; }; struct { T r, g; }; MTL_SWIZZLES_2 };
};
template <class T> struct alignas(4 * sizeof(T)) vec_storage<T, 3> {
  union { T v[3]; struct { T x, y, z; }; struct { T r, g, b; }; MTL_SWIZZLES_3 };
};
template <class T> struct alignas(4 * sizeof(T)) vec_storage<T, 4> {
  union { T v[4]; struct { T x, y, z, w; }; struct { T r, g, b, a; }; MTL_SWIZZLES_4 };
};
#undef MTL_SWIZZLE

template <class T, int N> struct vec : vec_storage<T, N> {
  vec() = default;
  constexpr explicit vec(T s) : vec_storage<T, N>{} {
    for (int i = 0; i < N; ++i) this->v[i] = s;
  }
  // float4(a, b, c, d), float4(v.xy, v.zw), float3(xy, z): the arguments' components in order, exactly N of them.
  template <class A, class B, class... R,
            typename enable_if<lane_count<A>::value + lane_count<B>::value + (lane_count<R>::value + ... + 0) == N,
                               int>::type = 0>
  constexpr vec(const A& a, const B& b, const R&... rest) : vec_storage<T, N>{} {
    int k = 0;
    put(k, a);
    put(k, b);
    (put(k, rest), ...);
  }
  // Braces: float4 v = {a, b, c} gives (a, b, c, 0); {x} gives (x, 0, 0, 0).
  constexpr vec(std::initializer_list<T> values) : vec_storage<T, N>{} {
    int k = 0;
    for (const T& x : values) if (k < N) this->v[k++] = x;
  }
  template <class U>
  constexpr explicit vec(const vec<U, N>& o) : vec_storage<T, N>{} {
    const vec<U, N> whole = o;  // one access of the whole vector, as Metal loads a vector operand
    for (int i = 0; i < N; ++i) this->v[i] = T(whole.v[i]);
  }
  template <class X, typename enable_if<swizzle_of<X>::value && lane_count<X>::value == N, int>::type = 0>
  constexpr explicit vec(const X& o) : vec_storage<T, N>{} {  // half2(v.wz)
    for (int i = 0; i < N; ++i) this->v[i] = T(o[i]);
  }
  T& operator[](int i) { return this->v[i]; }
  constexpr const T& operator[](int i) const { return this->v[i]; }

 private:
  template <class X> constexpr void put(int& k, const X& x) {
    if constexpr (lane_count<X>::value == 1) {
      this->v[k++] = T(x);
    } else {
      for (int j = 0; j < lane_count<X>::value; ++j) this->v[k++] = T(x[j]);
    }
  }
};

// Operators with a swizzle operand compute on the vector it reads as (one template per operator, found by ADL).
#define MTL_SWIZZLE_BINARY(op)                                                                                 \
  template <class A, class B, typename enable_if<swizzle_of<A>::value, int>::type = 0>                         \
  constexpr auto operator op(const A& a, const B& b) -> decltype(typename swizzle_of<A>::type(a) op b) {       \
    return typename swizzle_of<A>::type(a) op b;                                                               \
  }                                                                                                            \
  template <class A, class B, typename enable_if<!swizzle_of<A>::value && swizzle_of<B>::value, int>::type = 0> \
  constexpr auto operator op(const A& a, const B& b) -> decltype(a op typename swizzle_of<B>::type(b)) {       \
    return a op typename swizzle_of<B>::type(b);                                                               \
  }
MTL_SWIZZLE_BINARY(+)
MTL_SWIZZLE_BINARY(-)
MTL_SWIZZLE_BINARY(*)
MTL_SWIZZLE_BINARY(/)
MTL_SWIZZLE_BINARY(==)
MTL_SWIZZLE_BINARY(!=)
MTL_SWIZZLE_BINARY(<)
MTL_SWIZZLE_BINARY(<=)
MTL_SWIZZLE_BINARY(>)
MTL_SWIZZLE_BINARY(>=)
#undef MTL_SWIZZLE_BINARY

// Vector operands are taken by value: an operand in device memory is then read as one access of the whole vector,
// as Metal loads it (by reference, `m * a[i]` for a device float4* a read four 4-byte scalars). Compound
// assignment computes on a copy and stores the vector whole.
#define MTL_VEC_ARITH(op)                                                                                 \
  template <class T, int N> vec<T, N> operator op(vec<T, N> a, vec<T, N> b) {                             \
    vec<T, N> r;                                                                                          \
    for (int i = 0; i < N; ++i) r.v[i] = T(a.v[i] op b.v[i]);                                             \
    return r;                                                                                             \
  }                                                                                                       \
  template <class T, int N> vec<T, N> operator op(vec<T, N> a, typename identity<T>::type s) {            \
    vec<T, N> r;                                                                                          \
    for (int i = 0; i < N; ++i) r.v[i] = T(a.v[i] op s);                                                  \
    return r;                                                                                             \
  }                                                                                                       \
  template <class T, int N> vec<T, N> operator op(typename identity<T>::type s, vec<T, N> a) {            \
    vec<T, N> r;                                                                                          \
    for (int i = 0; i < N; ++i) r.v[i] = T(s op a.v[i]);                                                  \
    return r;                                                                                             \
  }                                                                                                       \
  template <class T, int N> vec<T, N>& operator op##=(vec<T, N>& a, vec<T, N> b) {                        \
    return a = a op b;                                                                                    \
  }                                                                                                       \
  template <class T, int N> vec<T, N>& operator op##=(vec<T, N>& a, typename identity<T>::type s) {       \
    return a = a op s;                                                                                    \
  }
MTL_VEC_ARITH(+)
MTL_VEC_ARITH(-)
MTL_VEC_ARITH(*)
MTL_VEC_ARITH(/)
#undef MTL_VEC_ARITH

template <class T, int N> vec<T, N> operator-(vec<T, N> a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = T(-a.v[i]);
  return r;
}

// Integer-only operators (lane by lane), as MSL defines them for integer vectors.
#define MTL_VEC_INT_ARITH(op)                                                                                  \
  template <class T, int N, typename enable_if<is_intlike<T>::value>::type = 0>                                \
  vec<T, N> operator op(vec<T, N> a, vec<T, N> b) {                                                            \
    vec<T, N> r;                                                                                               \
    for (int i = 0; i < N; ++i) r.v[i] = T(a.v[i] op b.v[i]);                                                  \
    return r;                                                                                                  \
  }                                                                                                            \
  template <class T, int N, typename enable_if<is_intlike<T>::value>::type = 0>                                \
  vec<T, N> operator op(vec<T, N> a, typename identity<T>::type s) {                                           \
    vec<T, N> r;                                                                                               \
    for (int i = 0; i < N; ++i) r.v[i] = T(a.v[i] op s);                                                       \
    return r;                                                                                                  \
  }                                                                                                            \
  template <class T, int N, typename enable_if<is_intlike<T>::value>::type = 0>                                \
  vec<T, N>& operator op##=(vec<T, N>& a, vec<T, N> b) {                                                       \
    return a = a op b;                                                                                         \
  }                                                                                                            \
  template <class T, int N, typename enable_if<is_intlike<T>::value>::type = 0>                                \
  vec<T, N>& operator op##=(vec<T, N>& a, typename identity<T>::type s) {                                      \
    return a = a op s;                                                                                         \
  }
MTL_VEC_INT_ARITH(%)
MTL_VEC_INT_ARITH(&)
MTL_VEC_INT_ARITH(|)
MTL_VEC_INT_ARITH(^)
MTL_VEC_INT_ARITH(<<)
MTL_VEC_INT_ARITH(>>)
#undef MTL_VEC_INT_ARITH
template <class T, int N, typename enable_if<is_intlike<T>::value>::type = 0> vec<T, N> operator~(vec<T, N> a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = T(~a.v[i]);
  return r;
}

// Comparisons give a bool vector (lane by lane); a scalar operand is compared with every lane.
#define MTL_VEC_COMPARE(op)                                                                                    \
  template <class T, int N> vec<bool, N> operator op(vec<T, N> a, vec<T, N> b) {                               \
    vec<bool, N> r;                                                                                            \
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] op b.v[i];                                                     \
    return r;                                                                                                  \
  }                                                                                                            \
  template <class T, int N> vec<bool, N> operator op(vec<T, N> a, typename identity<T>::type s) {              \
    vec<bool, N> r;                                                                                            \
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] op s;                                                          \
    return r;                                                                                                  \
  }                                                                                                            \
  template <class T, int N> vec<bool, N> operator op(typename identity<T>::type s, vec<T, N> a) {              \
    vec<bool, N> r;                                                                                            \
    for (int i = 0; i < N; ++i) r.v[i] = s op a.v[i];                                                          \
    return r;                                                                                                  \
  }
MTL_VEC_COMPARE(==)
MTL_VEC_COMPARE(!=)
MTL_VEC_COMPARE(<)
MTL_VEC_COMPARE(<=)
MTL_VEC_COMPARE(>)
MTL_VEC_COMPARE(>=)
MTL_VEC_COMPARE(&&)
MTL_VEC_COMPARE(||)
#undef MTL_VEC_COMPARE
template <class T, int N> vec<bool, N> operator!(vec<T, N> a) {
  vec<bool, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = !a.v[i];
  return r;
}

}  // namespace mtl

// ---- the renamed MSL type names ----

typedef ::mtl::half_t mtl_half;
typedef ::mtl::bfloat_t mtl_bfloat;
typedef unsigned int mtl_uint;
typedef unsigned short mtl_ushort;
typedef unsigned char mtl_uchar;
typedef unsigned long mtl_ulong;

#define MTL_VECTOR_NAMES(msl, T) \
  typedef ::mtl::vec<T, 2> mtl_##msl##2; typedef ::mtl::vec<T, 3> mtl_##msl##3; typedef ::mtl::vec<T, 4> mtl_##msl##4;
MTL_VECTOR_NAMES(bool, bool)
MTL_VECTOR_NAMES(char, signed char)
MTL_VECTOR_NAMES(uchar, unsigned char)
MTL_VECTOR_NAMES(short, short)
MTL_VECTOR_NAMES(ushort, unsigned short)
MTL_VECTOR_NAMES(int, int)
MTL_VECTOR_NAMES(uint, unsigned int)
MTL_VECTOR_NAMES(long, long)
MTL_VECTOR_NAMES(ulong, unsigned long)
MTL_VECTOR_NAMES(half, mtl_half)
MTL_VECTOR_NAMES(bfloat, mtl_bfloat)
MTL_VECTOR_NAMES(float, float)
#undef MTL_VECTOR_NAMES

namespace metal {
template <class T, int N> using vec = ::mtl::vec<T, N>;
}
