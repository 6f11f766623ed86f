// In-place KV-cache append: k_cache[:, :, offset:offset + S_new] = k and v_cache[:, :, offset:offset + S_new] = v,
// for caches [B, H, S_max, D] and new entries [B, H, S_new, D] (k and v may have different head sizes).
//
// For one (batch, head), the S_new * D new elements are contiguous in the source and land contiguously in the
// cache, starting offset * D elements into that head's S_max * D block. So the copy is a flat one per head:
// grid x = N_READS consecutive elements per thread, y = batch * head, z = 0 for k, 1 for v (one dispatch for both).
// Elements are copied bit for bit, no conversion. Memory traffic per new element: one read, one write (the
// minimum); the rest of the cache is not touched.
#include <metal_stdlib>
using namespace metal;

template <typename T, int N_READS>
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
  const bool is_v = gid.z == 1;
  const uint chunk = is_v ? v_chunk : k_chunk;
  const uint first = gid.x * N_READS;
  if (first >= chunk) {
    return;
  }
  const size_t head = gid.y;
  const device T* src = (is_v ? v : k) + head * chunk;
  device T* dst = (is_v ? v_cache : k_cache) + head * (is_v ? v_cache_chunk : k_cache_chunk) +
                  (is_v ? v_start : k_start);
  for (int i = 0; i < N_READS; i++) {
    const uint e = first + i;
    if (e < chunk) {
      dst[e] = src[e];
    }
  }
}

// Host names: kv_cache_append_<dtype>.
#define INSTANTIATE_KV_CACHE_APPEND(name, T) \
  template [[host_name("kv_cache_append_" #name)]] [[kernel]] decltype(kv_cache_append<T, 4>) \
      kv_cache_append<T, 4>;

INSTANTIATE_KV_CACHE_APPEND(float32, float)
INSTANTIATE_KV_CACHE_APPEND(float16, half)
INSTANTIATE_KV_CACHE_APPEND(bfloat16, bfloat)
