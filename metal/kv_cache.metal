// In-place KV-cache append: k_cache[:, :, offset:offset + S_new] = k and v_cache[:, :, offset:offset + S_new] = v,
// for caches [B, H, S_max, D] and new entries [B, H, S_new, D] (k and v may have different head sizes).
//
// For one (batch, head), the S_new * D new elements are contiguous in the source and land contiguously in the
// cache, starting offset * D elements into that head's S_max * D block. So the copy is a flat one per head:
// grid x = one 16-byte chunk per thread (4 floats or 8 halves / bfloats; consecutive threads, consecutive chunks),
// y = batch * head, z = 0 for k, 1 for v (one dispatch for both). Where a head's source and destination are both
// 16-byte aligned (D * S_new and offset * D whole chunks, no storage offset) whole chunks move as one 16-byte load
// and store; the head's last partial chunk, or an unaligned head, goes element by element with a guard on each.
// Threadgroups of 256 threads (the host's GROUP): 8 SIMD groups, no threadgroup memory, several per core.
// Elements are copied bit for bit, no conversion. Memory traffic per new element: one read, one write (the
// minimum); the rest of the cache is not touched. H100 lane (full runs at 91853cf and f11f7ae,
// docs/anchor-lane.md): 512 new rows of 1x32x128 in 4.5 / 4.6 / 9.4 us (bf16 / fp16 / fp32; in the L2 cache), one
// new row of 8x8x128 in 1.6 us.
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

// Elements [first, first + N) of one head's `count` new elements, src -> dst.
template <typename T>
inline void copy_chunk(const device T* src, device T* dst, uint first, uint count) {
  constexpr int N = ChunkOf<T>::N;
  if (first + N <= count && aligned16(src) && aligned16(dst)) {
    // The raw 16 bytes: no conversion, so every bit pattern (NaN payloads included) is kept.
    *reinterpret_cast<device uint4*>(dst + first) = *reinterpret_cast<const device uint4*>(src + first);
    return;
  }
  for (int i = 0; i < N; i++) {
    const uint e = first + i;
    if (e < count) {
      dst[e] = src[e];
    }
  }
}

template <typename T>
[[kernel]] void kv_cache_append(
    device T* k_cache [[buffer(0)]],
    device T* v_cache [[buffer(1)]],
    const device T* k [[buffer(2)]],
    const device T* v [[buffer(3)]],
    constant uint& k_chunk [[buffer(4)]],        // S_new * Dk: new elements per head in k
    constant uint& v_chunk [[buffer(5)]],        // S_new * Dv
    constant uint& k_cache_chunk [[buffer(6)]],  // S_max * Dk: elements per head in k_cache
    constant uint& v_cache_chunk [[buffer(7)]],  // S_max * Dv
    constant uint& k_start [[buffer(8)]],        // offset * Dk
    constant uint& v_start [[buffer(9)]],        // offset * Dv
    uint3 gid [[thread_position_in_grid]]) {
  const uint first = gid.x * ChunkOf<T>::N;
  const size_t head = gid.y;
  // Two calls rather than one through selected pointers: each keeps its buffers' address space visible.
  if (gid.z == 1) {
    if (first < v_chunk) {
      copy_chunk(v + head * v_chunk, v_cache + head * v_cache_chunk + v_start, first, v_chunk);
    }
  } else if (first < k_chunk) {
    copy_chunk(k + head * k_chunk, k_cache + head * k_cache_chunk + k_start, first, k_chunk);
  }
}

// Host names: kv_cache_append_<dtype>.
#define INSTANTIATE_KV_CACHE_APPEND(name, T) \
  template [[host_name("kv_cache_append_" #name)]] [[kernel]] decltype(kv_cache_append<T>) kv_cache_append<T>;

INSTANTIATE_KV_CACHE_APPEND(float32, float)
INSTANTIATE_KV_CACHE_APPEND(float16, half)
INSTANTIATE_KV_CACHE_APPEND(bfloat16, bfloat)
