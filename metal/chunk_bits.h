// A 16-byte chunk (metal/chunk_io.h: 4 floats or 8 halves / bfloats) held as its raw bits, a uint4: four 32-bit
// registers whatever the type, converted to fp32 only where a value is used. Kernels that keep chunks between a
// load and a later use (softmax holds a row across two reductions, rope keeps its table chunks across heads) hold
// 8 values of a 16-bit type in 4 registers this way instead of 8 fp32 registers, which is what kept the 16-bit
// versions of those kernels out of registers (stack frames and spills on the NVIDIA lane, where the fp32 versions,
// at 4 values a chunk, fitted). Apple GPUs have native 16-bit registers, so the same footprint argument holds there.
//
// Loads: one 16-byte access where `vec` (the array is 16-byte aligned) and the chunk is whole; guarded elements
// otherwise, whose positions past n hold zero bits. The type is passed as a tag argument (T()) because a uint4
// does not say what it holds.
#pragma once
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

// ---- chunk c of an n-element array, as bits ----

inline uint4 load_bits(const device float* p, uint c, uint n, bool vec) {
  const uint base = c * 4;
  if (vec && base + 4 <= n) {
    return *reinterpret_cast<const device uint4*>(p + base);
  }
  uint4 b = uint4(0);
  b.x = base + 0 < n ? as_type<uint>(p[base + 0]) : 0u;
  b.y = base + 1 < n ? as_type<uint>(p[base + 1]) : 0u;
  b.z = base + 2 < n ? as_type<uint>(p[base + 2]) : 0u;
  b.w = base + 3 < n ? as_type<uint>(p[base + 3]) : 0u;
  return b;
}

// Two 16-bit elements (base + i, base + i + 1) as one 32-bit word, zero past n.
template <typename T>
inline uint pair_bits(const device T* p, uint at, uint n) {
  const T lo = at < n ? p[at] : T(0);
  const T hi = at + 1 < n ? p[at + 1] : T(0);
  return as_type<uint>(vec<T, 2>(lo, hi));
}

template <typename T>
inline uint4 load_bits(const device T* p, uint c, uint n, bool vec) {
  const uint base = c * 8;
  if (vec && base + 8 <= n) {
    return *reinterpret_cast<const device uint4*>(p + base);
  }
  return uint4(pair_bits(p, base, n), pair_bits(p, base + 2, n), pair_bits(p, base + 4, n),
               pair_bits(p, base + 6, n));
}

// ---- bits to fp32: the chunk's N values into v[0, N) ----

inline void unpack_bits(float, uint4 b, thread float* v) {
  const float4 f = as_type<float4>(b);
  v[0] = f.x;
  v[1] = f.y;
  v[2] = f.z;
  v[3] = f.w;
}

template <typename T>
inline void unpack_bits(T, uint4 b, thread float* v) {
  const float4 lo = float4(as_type<vec<T, 4>>(uint2(b.x, b.y)));
  const float4 hi = float4(as_type<vec<T, 4>>(uint2(b.z, b.w)));
  for (int i = 0; i < 4; i++) {
    v[i] = lo[i];
    v[4 + i] = hi[i];
  }
}

// ---- fp32 values to bits (fp32 only: a chunk computed once and held, as softmax holds its logits) ----

inline uint4 pack_bits(float, const thread float* v) {
  return as_type<uint4>(float4(v[0], v[1], v[2], v[3]));
}
