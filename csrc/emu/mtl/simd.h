// SIMD-group and quad-group functions, and the two barriers.
//
// A collective posts its operands in the calling lane and blocks; the scheduler resolves it when no lane of the
// SIMD group can run, over the lanes waiting at it (the active lanes). A lane that reads an inactive lane through
// a shuffle or broadcast gets poison (all-ones bytes: NaN for floats), as such a read is undefined on Apple GPUs.
// quad_* functions are the same operations over aligned groups of 4 lanes.
#pragma once

#include "math.h"
#include "runtime.h"

// Every collective records the .metal line that called it: for error messages and for matching lanes to the
// same operation. GCC and clang evaluate these builtins at the call site when used as default arguments.
#define MTL_CALL_SITE const char *mtl_file = __builtin_FILE(), unsigned mtl_line = __builtin_LINE()
#define MTL_SITE ::mtl::Site{mtl_file, mtl_line}

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

struct simd_vote {
  using vote_t = uint64_t;
  vote_t bits = 0;
  constexpr simd_vote() = default;
  explicit constexpr simd_vote(vote_t v) : bits(v) {}
  explicit constexpr operator vote_t() const { return bits; }
  constexpr bool any() const { return bits != 0; }
  constexpr bool all() const { return (bits & 0xFFFFFFFFull) == 0xFFFFFFFFull; }
};

struct quad_vote {
  using vote_t = uint16_t;
  vote_t bits = 0;
  constexpr quad_vote() = default;
  explicit constexpr quad_vote(vote_t v) : bits(v) {}
  explicit constexpr operator vote_t() const { return bits; }
  constexpr bool any() const { return bits != 0; }
  constexpr bool all() const { return (bits & 0xFu) == 0xFu; }
};

}  // namespace metal

namespace mtl {
namespace simd_detail {

using metal::simd_vote;

template <class T> inline T in(const Lane* l, int slot = 0) {
  T v;
  std::memcpy(&v, l->in[slot], sizeof(T));
  return v;
}
template <class T> inline void set_out(Lane* l, const T& v) { std::memcpy(l->out, &v, sizeof(T)); }
inline void poison_out(Lane* l) { std::memset(l->out, kPoisonByte, sizeof(l->out)); }

template <class T> inline void check_operand() {
  static_assert(std::is_trivially_copyable<T>::value, "SIMD functions take scalars or vectors");
  static_assert(sizeof(T) <= 64, "SIMD function operand too large");
  static_assert(!metal::is_swizzle<T>::value, "SIMD functions take a vector, not a swizzle: write float2(v.xy)");
}

// Posts x (and an optional second value and integer operands), blocks, and returns this lane's result.
template <class R, class T>
inline R collective(const T& x, Resolver r, const char* op, Site site, int64_t a0 = 0, int64_t a1 = 0) {
  check_operand<T>();
  Lane& lane = current_lane();
  lane.put(x);
  lane.iarg[0] = a0;
  lane.iarg[1] = a1;
  wait_collective(lane, r, op, site);
  return lane.template result<R>();
}

// ---- reductions and scans over the active lanes of each partition (W = 32: SIMD group, W = 4: quad) ----

struct Add { template <class T> T operator()(T a, T b) const { return T(a + b); } };
struct Mul { template <class T> T operator()(T a, T b) const { return T(a * b); } };
struct Min { template <class T> T operator()(T a, T b) const { return metal::min(a, b); } };
struct Max { template <class T> T operator()(T a, T b) const { return metal::max(a, b); } };
struct And { template <class T> T operator()(T a, T b) const { return T(a & b); } };
struct Or { template <class T> T operator()(T a, T b) const { return T(a | b); } };
struct Xor { template <class T> T operator()(T a, T b) const { return T(a ^ b); } };

template <class T, int W, class Op> void resolve_reduce(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    bool have = false;
    T acc{};
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) {
        T x = in<T>(v.lanes[l]);
        acc = have ? Op()(acc, x) : x;
        have = true;
      }
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) set_out(v.lanes[l], acc);
  }
}

// Identity for exclusive scans: 0 for sums, 1 for products.
template <class T, class Op> T scan_identity() { return std::is_same<Op, Mul>::value ? T(1) : T(0); }

template <class T, int W, class Op, bool Inclusive> void resolve_scan(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    T acc = scan_identity<T, Op>();
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) {
        T x = in<T>(v.lanes[l]);
        T next = Op()(acc, x);
        set_out(v.lanes[l], Inclusive ? next : acc);
        acc = next;
      }
  }
}

// ---- data movement ----

// Where a lane reads from, given its position p in a partition of width W; -1 means "keep own value".
enum class Move { Index, Down, Up, Xor, RotateDown, RotateUp, BroadcastFirst };

template <class T, int W, Move M> void resolve_move(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    int first_active = -1;
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l] && first_active < 0) first_active = l - base;
    for (int l = base; l < base + W; ++l) {
      Lane* lane = v.lanes[l];
      if (!lane) continue;
      int p = l - base;
      int64_t a = lane->iarg[0];
      int64_t src;
      switch (M) {
        case Move::Index: src = a; break;
        case Move::Down: src = p + a < W ? p + a : -1; break;
        case Move::Up: src = p - a >= 0 ? p - a : -1; break;
        case Move::Xor: src = p ^ a; break;
        case Move::RotateDown: src = (p + a) % W; break;
        case Move::RotateUp: src = ((p - a) % W + W) % W; break;
        case Move::BroadcastFirst: src = first_active; break;
      }
      if (src == -1 && (M == Move::Down || M == Move::Up)) {
        set_out(lane, in<T>(lane));  // lanes shifted past the edge keep their own value
      } else if (src >= 0 && src < W && v.lanes[base + src]) {
        set_out(lane, in<T>(v.lanes[base + src]));
      } else {
        poison_out(lane);
      }
    }
  }
}

// simd_shuffle_and_fill_{down,up}: within segments of `modulo` lanes, lanes shifted past the segment's edge read
// the fill value of the lane at the mirrored position (lower lanes of `fill` for down, upper lanes for up).
template <class T, int W, bool Down> void resolve_fill(SimdView& v) {
  for (int l = 0; l < kSimdWidth; ++l) {
    Lane* lane = v.lanes[l];
    if (!lane) continue;
    int64_t delta = lane->iarg[0], modulo = lane->iarg[1];
    if (modulo <= 0 || modulo > W) modulo = W;
    int64_t seg = l / modulo * modulo, p = l - seg;
    int64_t q = Down ? p + delta : p - delta;
    int slot = 0;
    if (q >= modulo) q -= modulo, slot = 1;
    if (q < 0) q += modulo, slot = 1;
    Lane* from = (q >= 0 && q < modulo && seg + q < kSimdWidth) ? v.lanes[seg + q] : nullptr;
    if (from)
      set_out(lane, in<T>(from, slot));
    else
      poison_out(lane);
  }
}

// ---- votes ----

template <int W, bool All> void resolve_all_any(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    bool all = true, any = false;
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) {
        bool x = in<bool>(v.lanes[l]);
        all = all && x;
        any = any || x;
      }
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) set_out(v.lanes[l], All ? all : any);
  }
}

// Ballot (Mask = false) or active-lane mask (Mask = true), bit i = lane i of the partition.
template <int W, bool Mask> void resolve_ballot(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    uint64_t bits = 0;
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l] && (Mask || in<bool>(v.lanes[l]))) bits |= uint64_t(1) << (l - base);
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) set_out(v.lanes[l], bits);
  }
}

template <int W> void resolve_is_first(SimdView& v) {
  for (int base = 0; base < kSimdWidth; base += W) {
    bool first = true;
    for (int l = base; l < base + W; ++l)
      if (v.lanes[l]) {
        set_out(v.lanes[l], first);
        first = false;
      }
  }
}

inline void resolve_nothing(SimdView&) {}

}  // namespace simd_detail

}  // namespace mtl

namespace metal {

inline void threadgroup_barrier(mem_flags, MTL_CALL_SITE) { ::mtl::wait_barrier(MTL_SITE); }

// Lanes of one SIMD group wait for each other; the scheduler treats it as a collective without data.
inline void simdgroup_barrier(mem_flags, MTL_CALL_SITE) {
  ::mtl::Lane& lane = ::mtl::current_lane();
  ::mtl::wait_collective(lane, &::mtl::simd_detail::resolve_nothing, "simdgroup_barrier", MTL_SITE);
}

// Defines prefix##name for SIMD groups (W = 32) and quads (W = 4).
#define MTL_REDUCTION(name, Op)                                                                                    \
  template <class T> inline T simd_##name(T x, MTL_CALL_SITE) {                                                    \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_reduce<T, 32, Op>, "simd_" #name, MTL_SITE);                                  \
  }                                                                                                                \
  template <class T> inline T quad_##name(T x, MTL_CALL_SITE) {                                                    \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_reduce<T, 4, Op>, "quad_" #name, MTL_SITE);                                   \
  }
MTL_REDUCTION(sum, Add)
MTL_REDUCTION(product, Mul)
MTL_REDUCTION(min, Min)
MTL_REDUCTION(max, Max)
MTL_REDUCTION(and, And)
MTL_REDUCTION(or, Or)
MTL_REDUCTION(xor, Xor)
#undef MTL_REDUCTION

#define MTL_SCAN(name, Op, Inclusive)                                                                              \
  template <class T> inline T simd_##name(T x, MTL_CALL_SITE) {                                                    \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_scan<T, 32, Op, Inclusive>, "simd_" #name, MTL_SITE);                         \
  }                                                                                                                \
  template <class T> inline T quad_##name(T x, MTL_CALL_SITE) {                                                    \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_scan<T, 4, Op, Inclusive>, "quad_" #name, MTL_SITE);                          \
  }
MTL_SCAN(prefix_inclusive_sum, Add, true)
MTL_SCAN(prefix_exclusive_sum, Add, false)
MTL_SCAN(prefix_inclusive_product, Mul, true)
MTL_SCAN(prefix_exclusive_product, Mul, false)
#undef MTL_SCAN

#define MTL_MOVE(name, M)                                                                                          \
  template <class T> inline T simd_##name(T x, ushort n, MTL_CALL_SITE) {                                          \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_move<T, 32, Move::M>, "simd_" #name, MTL_SITE, n);                            \
  }                                                                                                                \
  template <class T> inline T quad_##name(T x, ushort n, MTL_CALL_SITE) {                                          \
    using namespace ::mtl::simd_detail;                                                                            \
    return collective<T>(x, &resolve_move<T, 4, Move::M>, "quad_" #name, MTL_SITE, n);                             \
  }
MTL_MOVE(shuffle, Index)
MTL_MOVE(broadcast, Index)
MTL_MOVE(shuffle_down, Down)
MTL_MOVE(shuffle_up, Up)
MTL_MOVE(shuffle_xor, Xor)
MTL_MOVE(shuffle_rotate_down, RotateDown)
MTL_MOVE(shuffle_rotate_up, RotateUp)
#undef MTL_MOVE

template <class T> inline T simd_broadcast_first(T x, MTL_CALL_SITE) {
  using namespace ::mtl::simd_detail;
  return collective<T>(x, &resolve_move<T, 32, Move::BroadcastFirst>, "simd_broadcast_first", MTL_SITE);
}
template <class T> inline T quad_broadcast_first(T x, MTL_CALL_SITE) {
  using namespace ::mtl::simd_detail;
  return collective<T>(x, &resolve_move<T, 4, Move::BroadcastFirst>, "quad_broadcast_first", MTL_SITE);
}

#define MTL_FILL(name, W, Down)                                                                                    \
  template <class T> inline T name(T data, T fill, ushort delta, MTL_CALL_SITE) {                                  \
    using namespace ::mtl::simd_detail;                                                                            \
    ::mtl::current_lane().put(fill, 1);                                                                            \
    return collective<T>(data, &resolve_fill<T, W, Down>, #name, MTL_SITE, delta, W);                              \
  }                                                                                                                \
  template <class T> inline T name(T data, T fill, ushort delta, ushort modulo, MTL_CALL_SITE) {                   \
    using namespace ::mtl::simd_detail;                                                                            \
    ::mtl::current_lane().put(fill, 1);                                                                            \
    return collective<T>(data, &resolve_fill<T, W, Down>, #name, MTL_SITE, delta, modulo);                         \
  }
MTL_FILL(simd_shuffle_and_fill_down, 32, true)
MTL_FILL(simd_shuffle_and_fill_up, 32, false)
MTL_FILL(quad_shuffle_and_fill_down, 4, true)
MTL_FILL(quad_shuffle_and_fill_up, 4, false)
#undef MTL_FILL

inline bool simd_all(bool x, MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(x, &::mtl::simd_detail::resolve_all_any<32, true>, "simd_all", MTL_SITE);
}
inline bool simd_any(bool x, MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(x, &::mtl::simd_detail::resolve_all_any<32, false>, "simd_any", MTL_SITE);
}
inline bool quad_all(bool x, MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(x, &::mtl::simd_detail::resolve_all_any<4, true>, "quad_all", MTL_SITE);
}
inline bool quad_any(bool x, MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(x, &::mtl::simd_detail::resolve_all_any<4, false>, "quad_any", MTL_SITE);
}
inline simd_vote simd_ballot(bool x, MTL_CALL_SITE) {
  return simd_vote(::mtl::simd_detail::collective<uint64_t>(x, &::mtl::simd_detail::resolve_ballot<32, false>,
                                                            "simd_ballot", MTL_SITE));
}
inline quad_vote quad_ballot(bool x, MTL_CALL_SITE) {
  return quad_vote(uint16_t(::mtl::simd_detail::collective<uint64_t>(x, &::mtl::simd_detail::resolve_ballot<4, false>,
                                                                     "quad_ballot", MTL_SITE)));
}
inline simd_vote simd_active_threads_mask(MTL_CALL_SITE) {
  return simd_vote(::mtl::simd_detail::collective<uint64_t>(true, &::mtl::simd_detail::resolve_ballot<32, true>,
                                                            "simd_active_threads_mask", MTL_SITE));
}
inline quad_vote quad_active_threads_mask(MTL_CALL_SITE) {
  return quad_vote(uint16_t(::mtl::simd_detail::collective<uint64_t>(true, &::mtl::simd_detail::resolve_ballot<4, true>,
                                                                     "quad_active_threads_mask", MTL_SITE)));
}
inline bool simd_is_first(MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(true, &::mtl::simd_detail::resolve_is_first<32>, "simd_is_first",
                                              MTL_SITE);
}
inline bool quad_is_first(MTL_CALL_SITE) {
  return ::mtl::simd_detail::collective<bool>(true, &::mtl::simd_detail::resolve_is_first<4>, "quad_is_first",
                                              MTL_SITE);
}

}  // namespace metal
