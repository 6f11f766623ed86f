// A 16-byte chunk (metal/chunk_io.h: 4 floats or 8 halves / bfloats) held as the bits it was loaded as, a uint4:
// four 32-bit registers whatever the type, converted to fp32 only where a value is used. Kernels that keep chunks
// between a load and a later use (the row norms hold a row across their reductions, rope keeps its table chunks
// across heads) hold 8 values of a 16-bit type in 4 registers this way instead of the 8 an fp32 copy takes; the
// values are the same (every T converts to fp32 exactly), so the numerics are those of fp32 copies. Apple GPUs have
// native 16-bit registers, so 8 halves in 4 32-bit registers is the natural size of such a chunk there too.
//
// Why (NVIDIA lane, benches/lane_registers.py, 64 registers at the 1024-thread bound): the 16-bit row kernels held
// float[4][8] and kept 72-256 B per thread in local memory (stack frames and spills), the 16-bit rope kernels 8-16 B;
// their fp32 versions, at 4 values a chunk, fitted.
#pragma once
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

// A chunk's bits as fp32 values: each half of the uint4 is a vec<T, N / 2> (2 floats or 4 16-bit values).
template <typename T>
inline void unpack_chunk(uint4 bits, thread float* v) {
  constexpr int H = ChunkOf<T>::N / 2;
  const vec<T, H> lo = as_type<vec<T, H>>(bits.xy);
  const vec<T, H> hi = as_type<vec<T, H>>(bits.zw);
  for (int i = 0; i < H; i++) {
    v[i] = float(lo[i]);
    v[H + i] = float(hi[i]);
  }
}

// fp32 values as a chunk's bits, each rounded to T once.
template <typename T>
inline uint4 pack_chunk(thread const float* v) {
  constexpr int H = ChunkOf<T>::N / 2;
  vec<T, H> lo;
  vec<T, H> hi;
  for (int i = 0; i < H; i++) {
    lo[i] = T(v[i]);
    hi[i] = T(v[H + i]);
  }
  return uint4(as_type<uint2>(lo), as_type<uint2>(hi));
}

// Chunk c of an n-element array as bits: one 16-byte load where `aligned` (the array is 16-byte aligned) and the
// chunk is whole, else element by element, each guarded, without a conversion; elements past n are 0.
template <typename T>
inline uint4 load_chunk_bits(const device T* p, uint c, uint n, bool aligned) {
  constexpr int H = ChunkOf<T>::N / 2;
  const uint base = c * (2 * H);
  if (aligned && base + 2 * H <= n) {
    return *reinterpret_cast<const device uint4*>(p + base);
  }
  vec<T, H> lo = vec<T, H>(T(0));
  vec<T, H> hi = vec<T, H>(T(0));
  for (int i = 0; i < H; i++) {
    if (base + i < n) {
      lo[i] = p[base + i];
    }
    if (base + H + i < n) {
      hi[i] = p[base + H + i];
    }
  }
  return uint4(as_type<uint2>(lo), as_type<uint2>(hi));
}

// Stores chunk c's bits: one 16-byte store where aligned and whole, else element by element, none past n.
template <typename T>
inline void store_chunk_bits(device T* p, uint c, uint n, bool aligned, uint4 bits) {
  constexpr int H = ChunkOf<T>::N / 2;
  const uint base = c * (2 * H);
  if (aligned && base + 2 * H <= n) {
    *reinterpret_cast<device uint4*>(p + base) = bits;
    return;
  }
  const vec<T, H> lo = as_type<vec<T, H>>(bits.xy);
  const vec<T, H> hi = as_type<vec<T, H>>(bits.zw);
  for (int i = 0; i < H; i++) {
    if (base + i < n) {
      p[base + i] = lo[i];
    }
    if (base + H + i < n) {
      p[base + H + i] = hi[i];
    }
  }
}
