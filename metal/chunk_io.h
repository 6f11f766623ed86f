// Memory access in whole 16-byte chunks, shared by the memory-bound kernels.
//
// A chunk is CHUNK<T> = 16 / sizeof(T) consecutive elements (4 floats, 8 halves or bfloats), converted to or
// from fp32 in a thread's registers. Where the address is 16-byte aligned and the chunk is whole, it moves with
// one 16-byte load or store (a float4, or a uint4 whose halves are reinterpreted as two 4-vectors of T); anywhere
// else element by element, each one bounds-checked. Callers decide alignment once per row or tensor
// (`aligned16`): buffers may be bound at any element offset (a tensor's storage offset), and Metal requires a
// vector access to be aligned to its size.
//
// Why whole vectors: a guard per element, or an address the compiler cannot prove aligned, keeps loads of
// consecutive elements from merging into one access, which is what memory-bound kernels need to keep enough
// bytes in flight.
#pragma once
#include <metal_stdlib>
using namespace metal;

template <typename T>
struct ChunkOf {
  static constexpr int constant N = 16 / sizeof(T);  // elements per 16-byte chunk
};

// Whether p may be accessed as 16-byte vectors.
template <typename T>
inline bool aligned16(const device T* p) {
  return (reinterpret_cast<ulong>(p) & 15) == 0;
}

// ---- one whole chunk at a 16-byte aligned address ----

inline void load_vector(const device float* p, thread float* v) {
  const float4 a = *reinterpret_cast<const device float4*>(p);
  v[0] = a.x;
  v[1] = a.y;
  v[2] = a.z;
  v[3] = a.w;
}

inline void store_vector(device float* p, const thread float* v) {
  *reinterpret_cast<device float4*>(p) = float4(v[0], v[1], v[2], v[3]);
}

// 16-bit types: one 16-byte access, split into two 4-vectors of T.
template <typename T>
inline void load_vector(const device T* p, thread float* v) {
  const uint4 bits = *reinterpret_cast<const device uint4*>(p);
  const float4 lo = float4(as_type<vec<T, 4>>(uint2(bits.x, bits.y)));
  const float4 hi = float4(as_type<vec<T, 4>>(uint2(bits.z, bits.w)));
  for (int i = 0; i < 4; i++) {
    v[i] = lo[i];
    v[4 + i] = hi[i];
  }
}

template <typename T>
inline void store_vector(device T* p, const thread float* v) {
  vec<T, 4> lo, hi;
  for (int i = 0; i < 4; i++) {
    lo[i] = T(v[i]);
    hi[i] = T(v[4 + i]);
  }
  const uint2 lo_bits = as_type<uint2>(lo);
  const uint2 hi_bits = as_type<uint2>(hi);
  *reinterpret_cast<device uint4*>(p) = uint4(lo_bits.x, lo_bits.y, hi_bits.x, hi_bits.y);
}

// ---- chunk c of an n-element array: vector access where `vec` (the array is 16-byte aligned) and the chunk is
// whole, guarded elements otherwise; elements past n read as 0 and are not written ----

template <typename T>
inline void load_chunk(const device T* p, uint c, uint n, bool vec, thread float* v) {
  constexpr int N = ChunkOf<T>::N;
  const uint base = c * N;
  if (vec && base + N <= n) {
    load_vector(p + base, v);
  } else {
    for (int i = 0; i < N; i++) {
      v[i] = base + i < n ? float(p[base + i]) : 0.0f;
    }
  }
}

template <typename T>
inline void store_chunk(device T* p, uint c, uint n, bool vec, const thread float* v) {
  constexpr int N = ChunkOf<T>::N;
  const uint base = c * N;
  if (vec && base + N <= n) {
    store_vector(p + base, v);
  } else {
    for (int i = 0; i < N; i++) {
      if (base + i < n) {
        p[base + i] = T(v[i]);
      }
    }
  }
}
