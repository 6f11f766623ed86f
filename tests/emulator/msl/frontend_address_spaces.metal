// Conformance: constructs that collapse once address spaces are erased, array kernel parameters, `coherent(...)`
// and `static constant constexpr const` members.
#include <metal_stdlib>
using namespace metal;

// Constructors with member initializer lists, one per address space (MLX's complex.h has this shape).
struct Pair {
  float a;
  float b;
  constexpr Pair(float x, float y) thread : a(x), b(y) {}
  constexpr Pair(float x, float y) threadgroup : a(x), b(y) {}
  constexpr Pair(float x, float y) device : a(x), b(y) {}
  constexpr Pair(float x, float y) constant : a(x), b(y) {}
  constexpr Pair() thread : a(0), b(0) {}
  constexpr Pair() threadgroup : a(0), b(0) {}
  constexpr operator float2() const thread { return float2(a, b); }
  constexpr operator float2() const device { return float2(a, b); }
};

// Free functions overloaded on the pointer's address space.
inline float first(device const float* p) { return p[0]; }
inline float first(threadgroup const float* p) { return p[0]; }
inline float first(thread const float* p) { return p[0]; }

// A class template partially specialised by address space.
template <typename T>
struct pointee {};
template <typename T>
struct pointee<thread T*> {
  using type = T;
};
template <typename T>
struct pointee<device T*> {
  using type = T;
};
template <typename T>
struct pointee<threadgroup T*> {
  using type = T;
};

struct Limits {
  static constant constexpr const float big = 1024.0f;
};

// `constant int64_t strides[3]` is bound like a constant buffer; coherent(system) qualifies a device pointer.
kernel void collapse(volatile coherent(system) device float* out [[buffer(0)]],
                     device const float* in [[buffer(1)]],
                     constant int64_t strides[3] [[buffer(2)]],
                     uint gid [[thread_position_in_grid]],
                     uint lid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[4];
  tile[lid] = in[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  Pair p(first(in), first(tile));
  pointee<device const float*>::type x = in[gid];
  float local[1] = {x};
  out[gid] = float2(p).x * 1000 + p.b * 100 + first(local) + float(strides[0] + strides[1] * strides[2]) + Limits::big;
}
