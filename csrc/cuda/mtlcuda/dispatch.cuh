// Binding a kernel's parameters inside the generated __global__ entry.
//
// Each entry takes one 64-bit word per [[buffer(i)]] slot (a device pointer, or a scalar's bytes inline: bit i of
// `inline_mask` says which), one 32-bit byte offset into dynamic shared memory per [[threadgroup(i)]] slot, and
// the dispatch geometry. The kernel's real parameter types come from its (instantiated) signature, so the
// generated code never spells a type: bind_buffer<param_t<F, k>>(word) converts to whatever parameter k is.
//
// dispatchThreads semantics: the host splits a grid that is not a multiple of the threadgroup size into regions
// launched separately, each with blockDim = the threadgroup size Metal would give (smaller at the edges), so
// threads_per_threadgroup reports the reduced size and no out-of-grid thread exists. `offset` is the region's
// first threadgroup position. The exception is a kernel whose threads never meet (no threadgroup memory, barrier
// or SIMD/quad collective anywhere in its translation unit, and only position builtins): Metal runs its ragged
// grid as one dispatch, and so does the lane, as one launch of whole blocks whose threads past the grid's edge
// return at once (translate.py emits the inside_grid test for those entries alone). threads_per_threadgroup is
// worked out from the geometry, so it reports Metal's reduced edge size in either form of launch.
#pragma once

#include "matrix.cuh"

namespace mtlcuda {

typedef unsigned long long Word;

struct Geometry {
  unsigned grid[3];    // threads_per_grid
  unsigned group[3];   // the nominal threadgroup size (dispatch_threads_per_threadgroup)
  unsigned offset[3];  // threadgroup position of this region's first block
};

enum Builtin {
  kThreadPositionInGrid,
  kThreadPositionInThreadgroup,
  kThreadgroupPositionInGrid,
  kThreadsPerThreadgroup,
  kThreadsPerGrid,
  kThreadgroupsPerGrid,
  kDispatchThreadsPerThreadgroup,
  kThreadIndexInThreadgroup,
  kThreadIndexInSimdgroup,
  kSimdgroupIndexInThreadgroup,
  kThreadsPerSimdgroup,
  kSimdgroupsPerThreadgroup,
  kThreadIndexInQuadgroup,
  kQuadgroupIndexInThreadgroup,
  kQuadgroupsPerThreadgroup,
  kThreadExecutionWidth,
  kDispatchSimdgroupsPerThreadgroup,
  kDispatchQuadgroupsPerThreadgroup,
};

// The extent of this block's threadgroup in dimension d: the nominal size, or what is left of the grid at its edge.
inline unsigned group_extent(const Geometry& g, int d, unsigned block) {
  const unsigned first = (block + g.offset[d]) * g.group[d];
  return min(g.group[d], g.grid[d] - first);
}

// Whether this thread is one Metal would run (false only in a one-launch ragged grid's padding).
inline bool inside_grid(const Geometry& g) {
  return (blockIdx.x + g.offset[0]) * g.group[0] + threadIdx.x < g.grid[0] &&
         (blockIdx.y + g.offset[1]) * g.group[1] + threadIdx.y < g.grid[1] &&
         (blockIdx.z + g.offset[2]) * g.group[2] + threadIdx.z < g.grid[2];
}

inline unsigned linear_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
inline unsigned threads_in_group() { return blockDim.x * blockDim.y * blockDim.z; }

inline mtl_uint3 builtin_value(Builtin b, const Geometry& g) {
  switch (b) {
    case kThreadPositionInGrid:
      return mtl_uint3((blockIdx.x + g.offset[0]) * g.group[0] + threadIdx.x,
                       (blockIdx.y + g.offset[1]) * g.group[1] + threadIdx.y,
                       (blockIdx.z + g.offset[2]) * g.group[2] + threadIdx.z);
    case kThreadPositionInThreadgroup: return mtl_uint3(threadIdx.x, threadIdx.y, threadIdx.z);
    case kThreadgroupPositionInGrid:
      return mtl_uint3(blockIdx.x + g.offset[0], blockIdx.y + g.offset[1], blockIdx.z + g.offset[2]);
    case kThreadsPerThreadgroup:
      return mtl_uint3(group_extent(g, 0, blockIdx.x), group_extent(g, 1, blockIdx.y), group_extent(g, 2, blockIdx.z));
    case kThreadsPerGrid: return mtl_uint3(g.grid[0], g.grid[1], g.grid[2]);
    case kThreadgroupsPerGrid:
      return mtl_uint3((g.grid[0] + g.group[0] - 1) / g.group[0], (g.grid[1] + g.group[1] - 1) / g.group[1],
                       (g.grid[2] + g.group[2] - 1) / g.group[2]);
    case kDispatchThreadsPerThreadgroup: return mtl_uint3(g.group[0], g.group[1], g.group[2]);
    case kThreadIndexInThreadgroup: return mtl_uint3(linear_thread(), 0u, 0u);
    case kThreadIndexInSimdgroup: return mtl_uint3(linear_thread() % 32u, 0u, 0u);
    case kSimdgroupIndexInThreadgroup: return mtl_uint3(linear_thread() / 32u, 0u, 0u);
    case kThreadsPerSimdgroup: return mtl_uint3(32u, 0u, 0u);
    case kSimdgroupsPerThreadgroup: return mtl_uint3((threads_in_group() + 31u) / 32u, 0u, 0u);
    case kThreadIndexInQuadgroup: return mtl_uint3(linear_thread() % 4u, 0u, 0u);
    case kQuadgroupIndexInThreadgroup: return mtl_uint3(linear_thread() / 4u, 0u, 0u);
    case kQuadgroupsPerThreadgroup: return mtl_uint3((threads_in_group() + 3u) / 4u, 0u, 0u);
    case kThreadExecutionWidth: return mtl_uint3(32u, 0u, 0u);
    case kDispatchSimdgroupsPerThreadgroup:
      return mtl_uint3((g.group[0] * g.group[1] * g.group[2] + 31u) / 32u, 0u, 0u);
    case kDispatchQuadgroupsPerThreadgroup:
      return mtl_uint3((g.group[0] * g.group[1] * g.group[2] + 3u) / 4u, 0u, 0u);
  }
  return mtl_uint3(0u, 0u, 0u);
}

// A builtin declared as a scalar takes .x; as a 2- or 3-vector, the first components.
template <class P> struct builtin_as {
  static P from(const mtl_uint3& v) { return P(v.x); }
};
template <class T> struct builtin_as<::mtl::vec<T, 2>> {
  static ::mtl::vec<T, 2> from(const mtl_uint3& v) { return ::mtl::vec<T, 2>(T(v.x), T(v.y)); }
};
template <class T> struct builtin_as<::mtl::vec<T, 3>> {
  static ::mtl::vec<T, 3> from(const mtl_uint3& v) { return ::mtl::vec<T, 3>(T(v.x), T(v.y), T(v.z)); }
};
template <class P> struct builtin_as<const P> : builtin_as<P> {};

template <class P> inline P bind_builtin(Builtin b, const Geometry& g) {
  return builtin_as<P>::from(builtin_value(b, g));
}

// A [[buffer(i)]] parameter. Pointers and writable references always point at device memory. A read-only
// reference (`constant T&`) may instead be a scalar passed inline: it binds to a copy of the word's bytes (a
// temporary that lives for the whole call). The address of a kernel parameter is never taken: a pointer that may
// point into parameter space lets the compiler treat stores through it as undefined and drop them.
template <class T> inline T from_word(Word w) {
  T v;
  memcpy(&v, &w, sizeof(T));
  return v;
}
template <class P, bool IsPointer = ::mtl::is_pointer<P>::value> struct buffer_as;
template <class P> struct buffer_as<P, true> {
  typedef P type;
  static P from(Word w, bool) { return reinterpret_cast<P>(w); }
};
template <class P> struct buffer_as<P, false> {  // device T&: device memory only
  typedef P type;
  static P from(Word w, bool) { return *reinterpret_cast<typename ::mtl::remove_reference<P>::type*>(w); }
};
template <class T> struct buffer_as<const T&, false> {  // constant T&: inline bytes or device memory
  typedef T type;
  static T from(Word w, bool inline_value) {
    return inline_value ? from_word<T>(w) : *reinterpret_cast<const T*>(w);
  }
};
template <class P> inline typename buffer_as<P>::type bind_buffer(Word w, bool inline_value) {
  return buffer_as<P>::from(w, inline_value);
}

// A [[threadgroup(i)]] parameter: its slice of the launch's dynamic shared memory.
extern __shared__ __align__(16) unsigned char dynamic_threadgroup_memory[];
template <class P> inline P bind_threadgroup(unsigned byte_offset) {
  if constexpr (::mtl::is_pointer<P>::value) {
    return reinterpret_cast<P>(dynamic_threadgroup_memory + byte_offset);
  } else {
    return *reinterpret_cast<typename ::mtl::remove_reference<P>::type*>(dynamic_threadgroup_memory + byte_offset);
  }
}

// The type of parameter I of a kernel, from its function pointer type.
template <int I, class... P> struct type_at;
template <class First, class... Rest> struct type_at<0, First, Rest...> { typedef First type; };
template <int I, class First, class... Rest> struct type_at<I, First, Rest...> : type_at<I - 1, Rest...> {};
template <class F, int I> struct param;
template <class... P, int I> struct param<void (*)(P...), I> { typedef typename type_at<I, P...>::type type; };
template <class F, int I> using param_t = typename param<F, I>::type;

}  // namespace mtlcuda
