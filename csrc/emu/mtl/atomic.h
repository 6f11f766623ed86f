// MSL atomics.  Threadgroups run on different OS threads, so every operation
// is a real hardware atomic (GCC/clang __atomic builtins on the storage).
//
// atomic<T> is a bare T: same size and alignment, trivially default
// constructible, so it can live inside raw device/threadgroup buffers.
#pragma once

#include "types.h"

namespace metal {

enum memory_order {
  memory_order_relaxed,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst,
};

template <typename T>
struct atomic {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "atomic<T> needs a lock-free scalar");
  T value;  // accessed only through the atomic_* functions
};

typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<bool> atomic_bool;
typedef atomic<float> atomic_float;
typedef atomic<ulong> atomic_ulong;
typedef atomic<long> atomic_long;

static_assert(sizeof(atomic_int) == 4 && alignof(atomic_int) == 4, "atomic_int layout");
static_assert(sizeof(atomic_float) == 4 && alignof(atomic_float) == 4, "atomic_float layout");
static_assert(sizeof(atomic_ulong) == 8 && alignof(atomic_ulong) == 8, "atomic_ulong layout");
static_assert(std::is_trivially_default_constructible<atomic_uint>::value, "atomics live in raw buffers");

namespace detail {

constexpr int gcc_order(memory_order o) {
  return o == memory_order_relaxed ? __ATOMIC_RELAXED
       : o == memory_order_acquire ? __ATOMIC_ACQUIRE
       : o == memory_order_release ? __ATOMIC_RELEASE
       : o == memory_order_acq_rel ? __ATOMIC_ACQ_REL
                                   : __ATOMIC_SEQ_CST;
}
// A CAS failure order may be neither release nor stronger than acquire.
constexpr int gcc_fail_order(memory_order o) {
  return o == memory_order_seq_cst ? __ATOMIC_SEQ_CST
       : (o == memory_order_acquire || o == memory_order_acq_rel) ? __ATOMIC_ACQUIRE
                                                                  : __ATOMIC_RELAXED;
}

// Read-modify-write through a compare-exchange loop (float add/sub, min/max,
// which the builtins lack).  Returns the previous value.
template <class T, class F>
inline T atomic_rmw_cas(volatile atomic<T>* obj, F f, memory_order order) {
  T expected;
  __atomic_load(&obj->value, &expected, __ATOMIC_RELAXED);
  for (;;) {
    T desired = f(expected);
    if (__atomic_compare_exchange(&obj->value, &expected, &desired, true, gcc_order(order), __ATOMIC_RELAXED))
      return expected;
  }
}

}  // namespace detail

// The value arguments are non-deduced so that atomic_fetch_add_explicit(p, 1, ...)
// works for atomic_uint as well.
template <class T>
inline void atomic_store_explicit(volatile atomic<T>* obj, detail::identity_t<T> desired, memory_order order) {
  __atomic_store(&obj->value, &desired, detail::gcc_order(order));
}

template <class T>
inline T atomic_load_explicit(const volatile atomic<T>* obj, memory_order order) {
  T r;
  __atomic_load(&obj->value, &r, detail::gcc_order(order));
  return r;
}

template <class T>
inline T atomic_exchange_explicit(volatile atomic<T>* obj, detail::identity_t<T> desired, memory_order order) {
  T r;
  __atomic_exchange(&obj->value, &desired, &r, detail::gcc_order(order));
  return r;
}

// Strong CAS is a valid implementation of the weak one and spares kernels
// from spurious failures.  On failure *expected receives the current value.
template <class T>
inline bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* obj, detail::identity_t<T>* expected,
                                                  detail::identity_t<T> desired, memory_order succ, memory_order fail) {
  return __atomic_compare_exchange(&obj->value, expected, &desired, false, detail::gcc_order(succ),
                                   detail::gcc_fail_order(fail));
}
template <class T>
inline bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* obj, detail::identity_t<T>* expected,
                                                    detail::identity_t<T> desired, memory_order succ, memory_order fail) {
  return __atomic_compare_exchange(&obj->value, expected, &desired, false, detail::gcc_order(succ),
                                   detail::gcc_fail_order(fail));
}

template <class T>
inline T atomic_fetch_add_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  if constexpr (std::is_floating_point<T>::value)
    return detail::atomic_rmw_cas(obj, [operand](T v) { return T(v + operand); }, order);
  else
    return __atomic_fetch_add(&obj->value, operand, detail::gcc_order(order));
}

template <class T>
inline T atomic_fetch_sub_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  if constexpr (std::is_floating_point<T>::value)
    return detail::atomic_rmw_cas(obj, [operand](T v) { return T(v - operand); }, order);
  else
    return __atomic_fetch_sub(&obj->value, operand, detail::gcc_order(order));
}

template <class T>
inline T atomic_fetch_and_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  return __atomic_fetch_and(&obj->value, operand, detail::gcc_order(order));
}
template <class T>
inline T atomic_fetch_or_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  return __atomic_fetch_or(&obj->value, operand, detail::gcc_order(order));
}
template <class T>
inline T atomic_fetch_xor_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  return __atomic_fetch_xor(&obj->value, operand, detail::gcc_order(order));
}

template <class T>
inline T atomic_fetch_min_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  return detail::atomic_rmw_cas(obj, [operand](T v) { return operand < v ? operand : v; }, order);
}
template <class T>
inline T atomic_fetch_max_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  return detail::atomic_rmw_cas(obj, [operand](T v) { return v < operand ? operand : v; }, order);
}

// Metal 3.1 spells the 64-bit min/max without "fetch" (no return value).
template <class T>
inline void atomic_min_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  atomic_fetch_min_explicit(obj, operand, order);
}
template <class T>
inline void atomic_max_explicit(volatile atomic<T>* obj, detail::identity_t<T> operand, memory_order order) {
  atomic_fetch_max_explicit(obj, operand, order);
}

}  // namespace metal
