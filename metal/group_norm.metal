// GroupNorm over NCHW-style inputs (N, C, *spatial), C split into `groups` groups of C/G consecutive channels:
//
//   out[n, c, s] = (x[n, c, s] - mean_{n,g}) * rsqrt(var_{n,g} + eps) [* weight[c]] [+ bias[c]]   (biased variance)
//
// where (n, g) runs over the C/G * HW elements of group g of sample n. In a contiguous (N, C, *) tensor these are
// one contiguous span of group_elems = C/G * HW elements starting at (n * G + g) * group_elems, so the kernel is a
// row norm over that span: one threadgroup per (n, group), the channel of element k of the span being
// g * C/G + k / HW (tracked incrementally: one division per 16-byte chunk, only with an affine).
//
// The span moves in 16-byte chunks (metal/chunk_io.h: 4 floats or 8 halves / bfloats): thread lid takes chunks
// lid + s * threads (a SIMD group moves one contiguous 512-byte span per step) and keeps its first N_CHUNKS chunks
// in registers (16384 floats or 32768 halves at 1024 threads), all loaded before the first reduction. Whole chunks
// of a 16-byte aligned span are single 16-byte loads and stores; the span's last partial chunk, or an unaligned
// span (a group size that is not a whole number of chunks, a storage offset), goes element by element with a guard
// on each. Threadgroups: the span's chunks / N_CHUNKS in whole SIMD groups, at most 1024 (Apple GPUs: SIMD width
// 32, at most 1024 threads): image-model groups are long, so one threadgroup per (n, group) uses them all.
// Statistics in fp32, stably (metal/rows.h, row_statistics): values shifted by the span's first value k (a constant
// group normalises to exactly 0, NaN at eps = 0, as PyTorch), sum of (v - k) -> mean, then sum of
// (v - k - mean)^2 over the register-held values; chunks past the register capacity keep a running per-thread
// count / mean / m2 merged a chunk at a time (Chan et al.) and contribute m2 + count * (mean_t - mean)^2. Both
// reductions: simd_sum, then across SIMD groups through threadgroup memory. A group whose fp32 sums overflow
// although its values are finite is done again on values scaled by a power of two (one max reduction more, and
// one more read of the chunks past the register capacity, for such groups only); inf or NaN gives NaN throughout.
//
// Passes over memory and bytes per element (E = sizeof(T)):
//   group_elems <= threads * N_CHUNKS chunks (16384 floats, 32768 halves at 1024 threads): x read once, out
//     written once = 2E, the minimum.
//   longer groups (typical of image models: C/G * HW = 16 * 64 * 64 = 65536 for C = 512, G = 32): the elements
//     past the register capacity are read twice (statistics pass, then the normalising pass) = 3E for those
//     elements; a 65536-element fp32 group moves 2.75E per element on average, a bf16 one 2.5E, against 2E.
// weight and bias: one value per channel (C/G per group), loaded per element where used: served from cache.
// `has_weight` and `has_bias` are function constants: absent ones bind no buffer and cost no branch.
#include <metal_stdlib>
using namespace metal;

#include "rows.h"

constant bool has_weight [[function_constant(0)]];
constant bool has_bias [[function_constant(1)]];

constant constexpr int N_CHUNKS = 4;  // 16-byte chunks a thread keeps in registers

// Stores chunk c of the span (y holds (v - mean) * inv_std), applying each element's channel affine.
template <typename T>
inline void store_group_chunk(device T* out, const device T* weight, const device T* bias, uint c, uint size,
                              bool vec, uint first_channel, uint spatial, thread float* y) {
  constexpr int N = ChunkOf<T>::N;
  if (has_weight || has_bias) {
    const uint base = c * N;
    uint channel = first_channel + base / spatial;
    uint offset = base % spatial;  // position of base + i inside its channel's spatial plane
    if (offset + N <= spatial && base + N <= size) {  // the whole chunk in one channel (HW a multiple of N)
      const float w = has_weight ? float(weight[channel]) : 1.0f;
      const float b = has_bias ? float(bias[channel]) : 0.0f;
      for (int i = 0; i < N; i++) {
        if (has_weight) {
          y[i] *= w;
        }
        if (has_bias) {
          y[i] += b;
        }
      }
      store_chunk(out, c, size, vec, y);
      return;
    }
    for (int i = 0; i < N; i++) {
      if (base + i < size) {  // past the span, the channel may lie past C
        if (has_weight) {
          y[i] *= float(weight[channel]);
        }
        if (has_bias) {
          y[i] += float(bias[channel]);
        }
      }
      if (++offset == spatial) {
        offset = 0;
        channel++;
      }
    }
  }
  store_chunk(out, c, size, vec, y);
}

template <typename T>
[[kernel]] void group_norm(
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    const device T* bias [[buffer(2), function_constant(has_bias)]],
    device T* out [[buffer(3)]],
    constant float& eps [[buffer(4)]],
    constant uint& group_elems [[buffer(5)]],  // C/G * HW
    constant uint& spatial [[buffer(6)]],      // HW (1 for (N, C) inputs)
    constant uint& groups [[buffer(7)]],       // G
    uint group_index [[threadgroup_position_in_grid]],  // n * G + g
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  constexpr int N = ChunkOf<T>::N;
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];

  const size_t span = size_t(group_index) * group_elems;
  x += span;
  out += span;
  const uint size = group_elems;
  const uint chunks = (size + N - 1) / N;
  const uint first_channel = (group_index % groups) * (group_elems / spatial);
  const bool vec = aligned16(x) && aligned16(out);
  const RowSlot slot = {group_index, lid, threads};

  float v[N_CHUNKS * N];
  for (int s = 0; s < N_CHUNKS; s++) {
    load_chunk(x, lid + s * threads, size, vec, v + s * N);  // chunks past the span read as 0
  }
  const RowStatistics st = row_statistics<T, N_CHUNKS, false>(v, float(x[0]), x, x, out, size, vec, slot, eps,
                                                              simd_lane, simd_group, partials_a, partials_b);

  for (int s = 0; s < N_CHUNKS; s++) {
    const uint c = lid + s * threads;
    if (c < chunks) {
      for (int i = 0; i < N; i++) {
        v[s * N + i] = (fma(v[s * N + i], st.scale, -st.shift) - st.mean) * st.inv_std;
      }
      store_group_chunk(out, weight, bias, c, size, vec, first_channel, spatial, v + s * N);
    }
  }
  for (uint c = lid + N_CHUNKS * threads; c < chunks; c += threads) {
    float h[N];
    load_chunk(x, c, size, vec, h);
    for (int i = 0; i < N; i++) {
      h[i] = (fma(h[i], st.scale, -st.shift) - st.mean) * st.inv_std;
    }
    store_group_chunk(out, weight, bias, c, size, vec, first_channel, spatial, h);
  }
}

// Host names: group_norm_<dtype>.
#define INSTANTIATE_GROUP_NORM(name, T) \
  template [[host_name("group_norm_" #name)]] [[kernel]] decltype(group_norm<T>) group_norm<T>;

INSTANTIATE_GROUP_NORM(float32, float)
INSTANTIATE_GROUP_NORM(float16, half)
INSTANTIATE_GROUP_NORM(bfloat16, bfloat)
