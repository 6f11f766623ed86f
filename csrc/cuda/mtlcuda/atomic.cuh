// <metal_atomic> for translated kernels: atomic_int, atomic_uint, atomic_bool, atomic_float (and atomic_ulong for
// the 64-bit min/max Metal 3.1 added) in device or threadgroup memory, and the *_explicit functions on CUDA's
// atomics. Metal's only memory order for these is memory_order_relaxed, which CUDA's atomics are.
#pragma once

#include "intrinsics.cuh"

namespace metal {

// The object has the layout of T (a buffer of uint bound as atomic_uint), so it is trivial: __shared__-able.
template <class T> struct atomic {
  T value;
};
typedef atomic<int> atomic_int;
typedef atomic<unsigned int> atomic_uint;
typedef atomic<bool> atomic_bool;
typedef atomic<float> atomic_float;
typedef atomic<unsigned long> atomic_ulong;

namespace detail {
// CUDA's atomics take int, unsigned, unsigned long long and float; 64-bit unsigned long goes as the latter.
template <class T> struct cuda_atomic { typedef T type; };
template <> struct cuda_atomic<unsigned long> { typedef unsigned long long type; };
template <class T> inline typename cuda_atomic<T>::type* cuda_ptr(atomic<T>* a) {
  return reinterpret_cast<typename cuda_atomic<T>::type*>(&a->value);
}
template <class T> using value_t = typename ::mtl::identity<T>::type;
}  // namespace detail

template <class T> inline void atomic_store_explicit(atomic<T>* a, detail::value_t<T> v, memory_order) {
  *reinterpret_cast<volatile T*>(&a->value) = v;
}
template <class T> inline T atomic_load_explicit(atomic<T>* a, memory_order) {
  return *reinterpret_cast<volatile T*>(&a->value);
}
template <class T> inline T atomic_exchange_explicit(atomic<T>* a, detail::value_t<T> v, memory_order) {
  if constexpr (sizeof(T) == 1) {
    static_assert(sizeof(T) != 1, "atomic_exchange_explicit on atomic_bool is not modelled by the CUDA lane");
    return v;
  } else {
    return T(atomicExch(detail::cuda_ptr(a), typename detail::cuda_atomic<T>::type(v)));
  }
}
// Weak compare-exchange: on failure *expected receives the current value (CUDA's CAS is strong, which is allowed).
template <class T>
inline bool atomic_compare_exchange_weak_explicit(atomic<T>* a, T* expected, detail::value_t<T> desired,
                                                  memory_order, memory_order) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "compare-exchange on 4- and 8-byte atomics only");
  typedef typename ::metal::conditional<sizeof(T) == 4, unsigned, unsigned long long>::type W;
  W want, give;
  memcpy(&want, expected, sizeof(T));
  memcpy(&give, &desired, sizeof(T));
  const W old = atomicCAS(reinterpret_cast<W*>(&a->value), want, give);
  if (old == want) return true;
  memcpy(expected, &old, sizeof(T));
  return false;
}
template <class T>
inline bool atomic_compare_exchange_strong_explicit(atomic<T>* a, T* expected, detail::value_t<T> desired,
                                                    memory_order s, memory_order f) {
  return atomic_compare_exchange_weak_explicit(a, expected, desired, s, f);
}

#define MTL_ATOMIC_FETCH(name, cuda_fn)                                                            \
  template <class T> inline T atomic_fetch_##name##_explicit(atomic<T>* a, detail::value_t<T> v, memory_order) { \
    return T(cuda_fn(detail::cuda_ptr(a), typename detail::cuda_atomic<T>::type(v)));            \
  }
MTL_ATOMIC_FETCH(add, atomicAdd)
MTL_ATOMIC_FETCH(and, atomicAnd)
MTL_ATOMIC_FETCH(or, atomicOr)
MTL_ATOMIC_FETCH(xor, atomicXor)
MTL_ATOMIC_FETCH(min, atomicMin)
MTL_ATOMIC_FETCH(max, atomicMax)
#undef MTL_ATOMIC_FETCH
template <class T> inline T atomic_fetch_sub_explicit(atomic<T>* a, detail::value_t<T> v, memory_order) {
  if constexpr (::metal::is_floating_point_v<T>) return T(atomicAdd(detail::cuda_ptr(a), -v));
  else return T(atomicSub(detail::cuda_ptr(a), typename detail::cuda_atomic<T>::type(v)));
}

}  // namespace metal
