// Barriers and SIMD-group / quad-group collectives on CUDA warps.
//
// A Metal SIMD group is 32 consecutive threads of the threadgroup in linear order; so is a CUDA warp (linear
// thread id x + y * Dx + z * Dx * Dy), so lane and SIMD-group indices carry over. A collective runs over the
// lanes that reach it together: the warp's active (coalesced) threads, __activemask(). Reductions give every
// lane the same value: a tree to the first active lane, then a broadcast (a butterfly would round differently in
// different lanes). Shuffles from inactive lanes are undefined in Metal; here they return whatever CUDA returns.
#pragma once

#include "math.cuh"

namespace metal {

enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
inline constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

inline void threadgroup_barrier(mem_flags flags) {
  if (unsigned(flags) & unsigned(mem_flags::mem_device)) __threadfence();
  __syncthreads();
}
inline void simdgroup_barrier(mem_flags flags) {
  if (unsigned(flags) & unsigned(mem_flags::mem_device)) __threadfence();
  __syncwarp(__activemask());
}

struct quad_vote {
  typedef unsigned short vote_t;
  vote_t bits;
  explicit quad_vote(vote_t v = 0) : bits(v) {}
  explicit operator vote_t() const { return bits; }
  bool any() const { return bits != 0; }
  bool all() const { return (bits & 0xFu) == 0xFu; }
};

struct simd_vote {
  typedef unsigned long vote_t;
  vote_t bits;
  explicit simd_vote(vote_t v = 0) : bits(v) {}
  explicit operator vote_t() const { return bits; }
  bool any() const { return bits != 0; }
  bool all() const { return (bits & 0xFFFFFFFFul) == 0xFFFFFFFFul; }
};

}  // namespace metal

namespace mtl {
namespace simd_detail {

inline unsigned lane_id() {
  unsigned l;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(l));
  return l;
}

// Any trivially copyable value moves through 32-bit shuffles, word by word.
template <class T> struct words {
  static constexpr int n = (sizeof(T) + 3) / 4;
  unsigned w[n];
};
template <class T> inline words<T> to_words(const T& v) {
  words<T> out = {};
  memcpy(out.w, &v, sizeof(T));
  return out;
}
template <class T> inline T from_words(const words<T>& in) {
  T v;
  memcpy(&v, in.w, sizeof(T));
  return v;
}
template <class T> inline T shfl(unsigned mask, const T& v, int src, int width = 32) {
  words<T> in = to_words(v), out;
  for (int i = 0; i < words<T>::n; ++i) out.w[i] = __shfl_sync(mask, in.w[i], src, width);
  return from_words<T>(out);
}
template <class T> inline T shfl_xor(unsigned mask, const T& v, int lane_mask, int width = 32) {
  words<T> in = to_words(v), out;
  for (int i = 0; i < words<T>::n; ++i) out.w[i] = __shfl_xor_sync(mask, in.w[i], lane_mask, width);
  return from_words<T>(out);
}
template <class T> inline T shfl_down(unsigned mask, const T& v, unsigned delta, int width = 32) {
  words<T> in = to_words(v), out;
  for (int i = 0; i < words<T>::n; ++i) out.w[i] = __shfl_down_sync(mask, in.w[i], delta, width);
  return from_words<T>(out);
}
template <class T> inline T shfl_up(unsigned mask, const T& v, unsigned delta, int width = 32) {
  words<T> in = to_words(v), out;
  for (int i = 0; i < words<T>::n; ++i) out.w[i] = __shfl_up_sync(mask, in.w[i], delta, width);
  return from_words<T>(out);
}

struct Sum { template <class T> T operator()(T a, T b) const { return T(a + b); } };
struct Product { template <class T> T operator()(T a, T b) const { return T(a * b); } };
struct Max {
  template <class T> T operator()(T a, T b) const { return b > a ? b : a; }
  float operator()(float a, float b) const { return ::fmaxf(a, b); }
};
struct Min {
  template <class T> T operator()(T a, T b) const { return b < a ? b : a; }
  float operator()(float a, float b) const { return ::fminf(a, b); }
};
struct And { template <class T> T operator()(T a, T b) const { return T(a & b); } };
struct Or { template <class T> T operator()(T a, T b) const { return T(a | b); } };
struct Xor { template <class T> T operator()(T a, T b) const { return T(a ^ b); } };

// op over the active lanes in `mask` (within a partition of `width` lanes starting at `base`), the same result
// in every lane, combined in lane order.
template <class Op, class T> inline T reduce(T v, unsigned mask, int width = 32) {
  const unsigned lane = lane_id();
  const unsigned base = lane & ~unsigned(width - 1);
  const unsigned part = width == 32 ? mask : (mask >> base) & ((1u << width) - 1u);
  Op op;
  if (width == 32 && mask == 0xffffffffu) {
    for (int d = 16; d >= 1; d /= 2) {
      T other = shfl_down(mask, v, d);
      v = op(v, other);
    }
    return shfl(mask, v, 0);
  }
  // Partial group: every lane walks the active lanes of its partition in order. Every lane of the warp must take
  // part in each shuffle with the same mask, so the loop runs over every slot of the partition.
  const int first = __ffs(part) - 1;
  T acc = shfl(mask, v, int(base) + first);
  for (int k = 0; k < width; ++k) {  // the same count in every partition: quads may start at different lanes
    const T x = shfl(mask, v, int(base) + k);
    if (k > first && ((part >> k) & 1u)) acc = op(acc, x);
  }
  return acc;
}

// Inclusive or exclusive scan in lane order over the active lanes of each partition of `width` lanes.
template <class Op, class T> inline T scan(T v, unsigned mask, bool inclusive, T identity, int width = 32) {
  const unsigned lane = lane_id();
  const unsigned base = lane & ~unsigned(width - 1);
  Op op;
  T acc = identity;
  bool started = false;
  for (int k = 0; k < 32; ++k) {
    const T x = shfl(mask, v, k);  // every active lane takes part in every shuffle
    if (!((mask >> k) & 1u) || unsigned(k) < base || unsigned(k) >= base + unsigned(width)) continue;
    if (unsigned(k) > lane || (!inclusive && unsigned(k) == lane)) continue;
    acc = started ? op(acc, x) : x;
    started = true;
  }
  return started ? acc : identity;
}

// simd_/quad_shuffle_and_fill_{down,up}: within segments of `modulo` lanes, a lane shifted past its segment's edge
// reads `fill` from the lane at the wrapped position (the emulator's csrc/emu/mtl/simd.h resolve_fill).
template <class T> inline T shuffle_and_fill(T data, T fill, int delta, int modulo, bool down, int width) {
  const unsigned mask = __activemask();
  if (modulo <= 0 || modulo > width) modulo = width;
  const int lane = int(lane_id());
  const int seg = lane / modulo * modulo, p = lane - seg;
  int q = down ? p + delta : p - delta;
  bool from_fill = false;
  if (q >= modulo) q -= modulo, from_fill = true;
  if (q < 0) q += modulo, from_fill = true;
  const int src = (seg + q) & 31;
  const T a = shfl(mask, data, src), b = shfl(mask, fill, src);
  return from_fill ? b : a;
}

}  // namespace simd_detail
}  // namespace mtl

namespace metal {

#define MTL_REDUCTION(name, Op)                                                                              \
  template <class T> inline T simd_##name(T v) {                                                             \
    return ::mtl::simd_detail::reduce<::mtl::simd_detail::Op>(v, __activemask());                           \
  }                                                                                                          \
  template <class T> inline T quad_##name(T v) {                                                             \
    return ::mtl::simd_detail::reduce<::mtl::simd_detail::Op>(v, __activemask(), 4);                        \
  }
MTL_REDUCTION(sum, Sum)
MTL_REDUCTION(product, Product)
MTL_REDUCTION(max, Max)
MTL_REDUCTION(min, Min)
MTL_REDUCTION(and, And)
MTL_REDUCTION(or, Or)
MTL_REDUCTION(xor, Xor)
#undef MTL_REDUCTION

template <class T> inline T simd_prefix_inclusive_sum(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Sum>(v, __activemask(), true, T(0));
}
template <class T> inline T simd_prefix_exclusive_sum(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Sum>(v, __activemask(), false, T(0));
}
template <class T> inline T quad_prefix_inclusive_sum(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Sum>(v, __activemask(), true, T(0), 4);
}
template <class T> inline T quad_prefix_exclusive_sum(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Sum>(v, __activemask(), false, T(0), 4);
}
template <class T> inline T quad_prefix_inclusive_product(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Product>(v, __activemask(), true, T(1), 4);
}
template <class T> inline T quad_prefix_exclusive_product(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Product>(v, __activemask(), false, T(1), 4);
}
#define MTL_FILL(name, down, width)                                                                  \
  template <class T, class I> inline T name(T data, T fill, I delta) {                              \
    return ::mtl::simd_detail::shuffle_and_fill(data, fill, int(delta), width, down, width);        \
  }                                                                                                 \
  template <class T, class I, class M> inline T name(T data, T fill, I delta, M modulo) {           \
    return ::mtl::simd_detail::shuffle_and_fill(data, fill, int(delta), int(modulo), down, width);  \
  }
MTL_FILL(simd_shuffle_and_fill_down, true, 32)
MTL_FILL(simd_shuffle_and_fill_up, false, 32)
MTL_FILL(quad_shuffle_and_fill_down, true, 4)
MTL_FILL(quad_shuffle_and_fill_up, false, 4)
#undef MTL_FILL
template <class T> inline T simd_prefix_inclusive_product(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Product>(v, __activemask(), true, T(1));
}
template <class T> inline T simd_prefix_exclusive_product(T v) {
  return ::mtl::simd_detail::scan<::mtl::simd_detail::Product>(v, __activemask(), false, T(1));
}

template <class T, class I> inline T simd_shuffle(T v, I lane) {
  return ::mtl::simd_detail::shfl(__activemask(), v, int(lane));
}
template <class T, class I> inline T simd_broadcast(T v, I lane) {
  return ::mtl::simd_detail::shfl(__activemask(), v, int(lane));
}
template <class T> inline T simd_broadcast_first(T v) {
  const unsigned mask = __activemask();
  return ::mtl::simd_detail::shfl(mask, v, __ffs(mask) - 1);
}
template <class T, class I> inline T simd_shuffle_xor(T v, I lane_mask) {
  return ::mtl::simd_detail::shfl_xor(__activemask(), v, int(lane_mask));
}
// Lanes shifted past the edge keep their own value (CUDA's rule, and the emulator's).
template <class T, class I> inline T simd_shuffle_down(T v, I delta) {
  return ::mtl::simd_detail::shfl_down(__activemask(), v, unsigned(delta));
}
template <class T, class I> inline T simd_shuffle_up(T v, I delta) {
  return ::mtl::simd_detail::shfl_up(__activemask(), v, unsigned(delta));
}
template <class T, class I> inline T simd_shuffle_rotate_down(T v, I delta) {
  return ::mtl::simd_detail::shfl(__activemask(), v, int((::mtl::simd_detail::lane_id() + unsigned(delta)) % 32u));
}
template <class T, class I> inline T simd_shuffle_rotate_up(T v, I delta) {
  const unsigned src = (::mtl::simd_detail::lane_id() + 32u - unsigned(delta) % 32u) % 32u;
  return ::mtl::simd_detail::shfl(__activemask(), v, int(src));
}
template <class T, class I> inline T quad_shuffle(T v, I lane) {
  return ::mtl::simd_detail::shfl(__activemask(), v, int(lane), 4);
}
template <class T, class I> inline T quad_broadcast(T v, I lane) {
  return ::mtl::simd_detail::shfl(__activemask(), v, int(lane), 4);
}
template <class T, class I> inline T quad_shuffle_xor(T v, I lane_mask) {
  return ::mtl::simd_detail::shfl_xor(__activemask(), v, int(lane_mask), 4);
}
template <class T, class I> inline T quad_shuffle_down(T v, I delta) {
  return ::mtl::simd_detail::shfl_down(__activemask(), v, unsigned(delta), 4);
}
template <class T, class I> inline T quad_shuffle_up(T v, I delta) {
  return ::mtl::simd_detail::shfl_up(__activemask(), v, unsigned(delta), 4);
}

inline bool simd_all(bool b) { return __all_sync(__activemask(), b); }
inline bool simd_any(bool b) { return __any_sync(__activemask(), b); }
inline simd_vote simd_ballot(bool b) { return simd_vote(__ballot_sync(__activemask(), b)); }
inline simd_vote simd_active_threads_mask() { return simd_vote(__activemask()); }
inline bool simd_is_first() { return ::mtl::simd_detail::lane_id() == unsigned(__ffs(__activemask()) - 1); }
inline quad_vote quad_ballot(bool b) {
  const unsigned base = ::mtl::simd_detail::lane_id() & ~3u;
  return quad_vote((unsigned short)((__ballot_sync(__activemask(), b) >> base) & 0xFu));
}
inline bool quad_all(bool b) {
  const unsigned quad = 0xFu << (::mtl::simd_detail::lane_id() & ~3u);
  return (__ballot_sync(__activemask(), b) & quad & __activemask()) == (quad & __activemask());
}
inline bool quad_any(bool b) {
  const unsigned quad = 0xFu << (::mtl::simd_detail::lane_id() & ~3u);
  return (__ballot_sync(__activemask(), b) & quad) != 0;
}

}  // namespace metal
