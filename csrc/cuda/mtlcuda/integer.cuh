// <metal_integer> for translated kernels: clz, ctz, popcount, reverse_bits, rotate, extract_bits, insert_bits,
// absdiff, addsat, subsat, hadd, rhadd, mulhi, madhi, madsat, mul24, mad24, on integer scalars and vectors
// (lane by lane). Narrow types count within their own width (clz(ushort(1)) is 15), as in Metal and in the
// emulator's csrc/emu/mtl/math.h.
#pragma once

#include "math.cuh"

namespace mtl {
namespace ints {

template <class T> struct unsigned_of;
template <> struct unsigned_of<bool> { typedef unsigned char type; };
template <> struct unsigned_of<char> { typedef unsigned char type; };
template <> struct unsigned_of<signed char> { typedef unsigned char type; };
template <> struct unsigned_of<unsigned char> { typedef unsigned char type; };
template <> struct unsigned_of<short> { typedef unsigned short type; };
template <> struct unsigned_of<unsigned short> { typedef unsigned short type; };
template <> struct unsigned_of<int> { typedef unsigned int type; };
template <> struct unsigned_of<unsigned int> { typedef unsigned int type; };
template <> struct unsigned_of<long> { typedef unsigned long type; };
template <> struct unsigned_of<unsigned long> { typedef unsigned long type; };
template <> struct unsigned_of<long long> { typedef unsigned long long type; };
template <> struct unsigned_of<unsigned long long> { typedef unsigned long long type; };
template <class T> using U = typename unsigned_of<T>::type;
template <class T> constexpr int nbits = int(sizeof(T) * 8);
template <class T> constexpr bool is_signed_int = T(-1) < T(0);

template <class T> inline T clz(T x) {
  const U<T> u = U<T>(x);
  if (u == 0) return T(nbits<T>);
  if constexpr (sizeof(T) <= 4) return T(__clz(int(unsigned(u))) - (32 - nbits<T>));
  else return T(__clzll((long long)u));
}
template <class T> inline T ctz(T x) {
  const U<T> u = U<T>(x);
  if (u == 0) return T(nbits<T>);
  if constexpr (sizeof(T) <= 4) return T(__ffs(int(unsigned(u))) - 1);
  else return T(__ffsll((long long)u) - 1);
}
template <class T> inline T popcount(T x) {
  if constexpr (sizeof(T) <= 4) return T(__popc(unsigned(U<T>(x))));
  else return T(__popcll((unsigned long long)U<T>(x)));
}
template <class T> inline T reverse_bits(T x) {
  if constexpr (sizeof(T) <= 4) return T(U<T>(__brev(unsigned(U<T>(x))) >> (32 - nbits<T>)));
  else return T(__brevll((unsigned long long)U<T>(x)));
}
template <class T> inline T rotate(T v, T i) {
  const unsigned s = unsigned(U<T>(i)) % unsigned(nbits<T>);
  if (s == 0) return v;
  return T(U<T>(U<T>(U<T>(v) << s) | U<T>(U<T>(v) >> (nbits<T> - s))));
}
template <class T> inline T absdiff(T a, T b) { return T(a > b ? U<T>(U<T>(a) - U<T>(b)) : U<T>(U<T>(b) - U<T>(a))); }
template <class T> inline T saturate_to(long long w) {
  const long long lo = (long long)::metal::numeric_limits<T>::min(), hi = (long long)::metal::numeric_limits<T>::max();
  return w < lo ? T(lo) : w > hi ? T(hi) : T(w);
}
template <class T> inline T addsat(T a, T b) {
  if constexpr (sizeof(T) < 8 && !(sizeof(T) == 4 && !is_signed_int<T>)) {
    return saturate_to<T>((long long)a + (long long)b);
  } else {
    const T r = T(U<T>(U<T>(a) + U<T>(b)));
    if constexpr (is_signed_int<T>) {
      const bool overflow = (b > 0 && r < a) || (b < 0 && r > a);
      return overflow ? (b > 0 ? ::metal::numeric_limits<T>::max() : ::metal::numeric_limits<T>::min()) : r;
    } else {
      return r < a ? ::metal::numeric_limits<T>::max() : r;
    }
  }
}
template <class T> inline T subsat(T a, T b) {
  if constexpr (sizeof(T) < 8 && !(sizeof(T) == 4 && !is_signed_int<T>)) {
    return saturate_to<T>((long long)a - (long long)b);
  } else {
    const T r = T(U<T>(U<T>(a) - U<T>(b)));
    if constexpr (is_signed_int<T>) {
      const bool overflow = (b < 0 && r < a) || (b > 0 && r > a);
      return overflow ? (b < 0 ? ::metal::numeric_limits<T>::max() : ::metal::numeric_limits<T>::min()) : r;
    } else {
      return a < b ? T(0) : r;
    }
  }
}
// (a + b) >> 1 and (a + b + 1) >> 1 without intermediate overflow.
template <class T> inline T hadd(T a, T b) { return T((a >> 1) + (b >> 1) + (a & b & 1)); }
template <class T> inline T rhadd(T a, T b) { return T((a >> 1) + (b >> 1) + ((a | b) & 1)); }
template <class T> inline T mulhi(T a, T b) {
  if constexpr (sizeof(T) < 4) return T(((long long)a * (long long)b) >> nbits<T>);
  else if constexpr (sizeof(T) == 4 && is_signed_int<T>) return T(__mulhi(int(a), int(b)));
  else if constexpr (sizeof(T) == 4) return T(__umulhi(unsigned(a), unsigned(b)));
  else if constexpr (is_signed_int<T>) return T(__mul64hi((long long)a, (long long)b));
  else return T(__umul64hi((unsigned long long)a, (unsigned long long)b));
}
template <class T> inline T madsat(T a, T b, T c) {
  static_assert(sizeof(T) < 4 || (sizeof(T) == 4 && is_signed_int<T>),
                "madsat of 32-bit unsigned and 64-bit integers is not modelled by the CUDA lane");
  return saturate_to<T>((long long)a * (long long)b + (long long)c);
}
template <class T> inline T extract_bits(T x, unsigned offset, unsigned bits) {
  if (offset >= unsigned(nbits<T>) || bits == 0) return T(0);
  if (bits > unsigned(nbits<T>) - offset) bits = unsigned(nbits<T>) - offset;  // out of range in MSL: clamped
  const unsigned long long v = (unsigned long long)U<T>(x) << (64 - offset - bits);
  if constexpr (is_signed_int<T>) return T((long long)v >> (64 - bits));  // sign-extended
  else return T(v >> (64 - bits));
}
template <class T> inline T insert_bits(T base, T ins, unsigned offset, unsigned bits) {
  if (offset >= unsigned(nbits<T>) || bits == 0) return base;
  if (bits > unsigned(nbits<T>) - offset) bits = unsigned(nbits<T>) - offset;
  const unsigned long long mask = (bits >= 64 ? ~0ull : ((1ull << bits) - 1)) << offset;
  const unsigned long long b = (unsigned long long)U<T>(base), i = (unsigned long long)U<T>(ins);
  return T(U<T>((b & ~mask) | ((i << offset) & mask)));
}

template <class X> struct lanes_of { typedef X elem; static constexpr int n = 1; };
template <class T, int N> struct lanes_of<vec<T, N>> { typedef T elem; static constexpr int n = N; };
template <class X> inline typename lanes_of<X>::elem& lane(X& x, int) { return x; }
template <class T, int N> inline T& lane(vec<T, N>& x, int i) { return x.v[i]; }
template <class X> inline typename lanes_of<X>::elem lane(const X& x, int) { return x; }
template <class T, int N> inline T lane(const vec<T, N>& x, int i) { return x.v[i]; }

}  // namespace ints
}  // namespace mtl

namespace metal {

namespace detail {
template <class X> struct integer_arg {
  static constexpr bool value = ::mtl::is_intlike<typename ::mtl::ints::lanes_of<X>::elem>::value;
};
}  // namespace detail

#define MTL_INTEGER_FN(name, params, call)                                                          \
  template <class X, typename ::mtl::enable_if<detail::integer_arg<X>::value>::type = 0>            \
  inline X name params {                                                                            \
    X r;                                                                                            \
    for (int i = 0; i < ::mtl::ints::lanes_of<X>::n; ++i) ::mtl::ints::lane(r, i) = call;          \
    return r;                                                                                       \
  }
#define MTL_L(v) ::mtl::ints::lane(v, i)
MTL_INTEGER_FN(clz, (X x), ::mtl::ints::clz(MTL_L(x)))
MTL_INTEGER_FN(ctz, (X x), ::mtl::ints::ctz(MTL_L(x)))
MTL_INTEGER_FN(popcount, (X x), ::mtl::ints::popcount(MTL_L(x)))
MTL_INTEGER_FN(reverse_bits, (X x), ::mtl::ints::reverse_bits(MTL_L(x)))
MTL_INTEGER_FN(rotate, (X v, X s), ::mtl::ints::rotate(MTL_L(v), MTL_L(s)))
MTL_INTEGER_FN(absdiff, (X a, X b), ::mtl::ints::absdiff(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(addsat, (X a, X b), ::mtl::ints::addsat(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(subsat, (X a, X b), ::mtl::ints::subsat(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(hadd, (X a, X b), ::mtl::ints::hadd(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(rhadd, (X a, X b), ::mtl::ints::rhadd(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(mulhi, (X a, X b), ::mtl::ints::mulhi(MTL_L(a), MTL_L(b)))
MTL_INTEGER_FN(madhi, (X a, X b, X c), decltype(MTL_L(a))(::mtl::ints::mulhi(MTL_L(a), MTL_L(b)) + MTL_L(c)))
MTL_INTEGER_FN(madsat, (X a, X b, X c), ::mtl::ints::madsat(MTL_L(a), MTL_L(b), MTL_L(c)))
MTL_INTEGER_FN(mul24, (X a, X b), decltype(MTL_L(a))(MTL_L(a) * MTL_L(b)))
MTL_INTEGER_FN(mad24, (X a, X b, X c), decltype(MTL_L(a))(MTL_L(a) * MTL_L(b) + MTL_L(c)))
MTL_INTEGER_FN(extract_bits, (X x, unsigned offset, unsigned bits), ::mtl::ints::extract_bits(MTL_L(x), offset, bits))
MTL_INTEGER_FN(insert_bits, (X base, X ins, unsigned offset, unsigned bits),
               ::mtl::ints::insert_bits(MTL_L(base), MTL_L(ins), offset, bits))
#undef MTL_L
#undef MTL_INTEGER_FN

}  // namespace metal

namespace mtl {  // integer vectors find these by argument-dependent lookup too (see math.cuh)
using ::metal::absdiff; using ::metal::addsat; using ::metal::clz; using ::metal::ctz; using ::metal::extract_bits;
using ::metal::hadd; using ::metal::insert_bits; using ::metal::mad24; using ::metal::madhi; using ::metal::madsat;
using ::metal::mul24; using ::metal::mulhi; using ::metal::popcount; using ::metal::reverse_bits;
using ::metal::rhadd; using ::metal::rotate; using ::metal::subsat;
}  // namespace mtl
