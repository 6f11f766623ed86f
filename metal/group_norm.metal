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
// Those are the one-block kernel's figures. Where (sample, group) pairs are few, one threadgroup each leaves most of
// the GPU idle: image models have 32 groups x 1..8 samples = 32..256 threadgroups against 10..80 Apple GPU cores
// needing several resident threadgroups each (and an H200's 132 SMs). Lane before this split (H200, % of copy
// bandwidth for 2E): 8x512x64x64 (65536-element groups) bf16 30%, fp16 31%, fp32 54%; 1x320x128x128 14/16/25%.
// The host (src/mpskernels/kernels/group_norm.py) then splits each group over blocks of 256 threads x 4 chunks
// (16 KiB: 4096 floats, 8192 halves): group_norm_partials + group_norm_apply below. 8x512x64x64 becomes 2048
// (16-bit) or 4096 (fp32) threadgroups, 1x320x128x128 640 or 1280; each thread keeps 64 bytes in flight.
// Bytes: x read twice (the partials pass, then the normalising pass), out written once = 3E per element against
// the one-block kernel's 2E (small groups) or 2.5E-2.75E (groups past its registers); the second read of a tensor
// that fits the GPU's last-level cache (24-96 MB SLC on Apple GPUs, 50 MB L2 on the H200) is served from there.
// weight and bias: one value per channel (C/G per group), loaded per element where used: served from cache.
// `has_weight` and `has_bias` are function constants: absent ones bind no buffer and cost no branch.
#include <metal_stdlib>
using namespace metal;

#include "rows.h"

constant bool has_weight [[function_constant(0)]];
constant bool has_bias [[function_constant(1)]];

constant constexpr int N_CHUNKS = 4;  // 16-byte chunks a thread keeps in registers

// Stores chunk c of `out` (size elements; y holds (v - mean) * inv_std), applying each element's channel affine.
// `origin`: the group element at out[0] (0, or a block's first element in the split path).
template <typename T>
inline void store_group_chunk(device T* out, const device T* weight, const device T* bias, uint c, uint size,
                              bool vec, uint first_channel, uint spatial, uint origin, thread float* y) {
  constexpr int N = ChunkOf<T>::N;
  if (has_weight || has_bias) {
    const uint base = c * N;
    uint channel = first_channel + (origin + base) / spatial;
    uint offset = (origin + base) % spatial;  // position of base + i inside its channel's spatial plane
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
      store_group_chunk(out, weight, bias, c, size, vec, first_channel, spatial, 0, v + s * N);
    }
  }
  for (uint c = lid + N_CHUNKS * threads; c < chunks; c += threads) {
    float h[N];
    load_chunk(x, c, size, vec, h);
    for (int i = 0; i < N; i++) {
      h[i] = (fma(h[i], st.scale, -st.shift) - st.mean) * st.inv_std;
    }
    store_group_chunk(out, weight, bias, c, size, vec, first_channel, spatial, 0, h);
  }
}

// ---- The split path: a group over several threadgroups (blocks), two dispatches ----
//
// Block b of group (n, g) owns elements [b * slice, min((b + 1) * slice, group_elems)) of the group's span (slice a
// whole number of chunks, so a block's chunks are 16-byte aligned wherever the span is).
//   group_norm_partials: each block loads its slice into registers (all loads issued before the first reduction)
//     and writes (mean, m2, half spread) of its values d = v - k, k the group's first value (as the one-block
//     kernel), to partials[group * blocks + b]. The moments are of d * s_b, s_b = spread_scale(half spread): a
//     power of two putting the block's largest |d * s_b| in [2^20, 2^21), so they neither overflow (bf16/fp32
//     values near the float max) nor underflow (tiny values at eps = 0) whatever the data, with no branch.
//   group_norm_apply: each block issues its slice's loads, then every SIMD group merges the group's `blocks`
//     partials itself (no barrier): s = spread_scale(max half spread), each block's moments rescaled by the exact
//     power of two s / s_b (<= 1) and merged (Chan et al.), then normalises its slice and applies the affine.
// Same statistics as the one-block kernel (a constant group gives exactly 0, NaN at eps = 0; inf or NaN anywhere
// in the group gives NaN throughout), computed in a different order.

// A power of two s for values whose largest |d| is 2 * half_spread: |d * s| < 2^21 (1 for a constant block).
inline float spread_scale(float half_spread) {
  if (half_spread == 0.0f || is_nonfinite(half_spread)) {
    return 1.0f;
  }
  const uint e = (as_type<uint>(half_spread) >> 23) & 0xffu;  // 0 for a subnormal: the clamp still holds
  return as_type<float>(uint(clamp(273 - int(e), 1, 254)) << 23);
}

// The group of threadgroup `tg`, the block inside it, and the block's slice.
struct GroupBlock {
  uint group;   // n * G + g
  uint block;   // block index inside the group
  uint origin;  // the slice's first element inside the group
  uint size;    // elements in the slice
};

inline GroupBlock group_block(uint tg, uint blocks, uint slice, uint group_elems) {
  const uint group = tg / blocks;
  const uint block = tg - group * blocks;
  const uint origin = block * slice;
  return GroupBlock{group, block, origin, min(slice, group_elems - origin)};
}

template <typename T>
[[kernel]] void group_norm_partials(
    const device T* x [[buffer(0)]],
    device float4* partials [[buffer(1)]],      // (groups of all samples * blocks): mean, m2, half spread, 0
    constant uint& group_elems [[buffer(2)]],
    constant uint& slice [[buffer(3)]],         // elements per block, a multiple of the chunk
    constant uint& blocks [[buffer(4)]],        // blocks per group
    uint tg [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  constexpr int N = ChunkOf<T>::N;
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];

  const GroupBlock gb = group_block(tg, blocks, slice, group_elems);
  const device T* group_x = x + size_t(gb.group) * group_elems;
  const device T* xb = group_x + gb.origin;
  const bool vec = aligned16(xb);
  const RowSlot slot = {tg, lid, threads};

  float v[N_CHUNKS * N];
  for (int s = 0; s < N_CHUNKS; s++) {
    load_chunk(xb, lid + s * threads, gb.size, vec, v + s * N);
  }
  const float k = float(group_x[0]);
  const float half_spread = row_half_spread<T, N_CHUNKS, false>(v, xb, nullptr, gb.size, vec, slot, k, simd_lane,
                                                                simd_group, partials_a);
  const float s = spread_scale(half_spread);
  const float2 moments = row_moments<T, N_CHUNKS, false>(v, xb, xb, nullptr, gb.size, vec, slot, false, s, k * s,
                                                         simd_lane, simd_group, partials_b, partials_a);
  if (lid == 0) {
    partials[tg] = float4(moments.x, moments.y * float(gb.size), half_spread, 0.0f);
  }
}

// (scale, shift, mean, inv_std) of a group from its blocks' partials, merged by each SIMD group on its own
// (`lanes` of them: the threadgroup's last SIMD group may be partial).
inline RowStatistics merge_group_partials(const device float4* p, uint blocks, uint slice, uint group_elems,
                                          float k, float eps, uint simd_lane, uint lanes) {
  float half_spread = 0.0f;
  for (uint b = simd_lane; b < blocks; b += lanes) {
    half_spread = max(half_spread, p[b].z);  // inf for a block holding inf or NaN
  }
  half_spread = simd_max(half_spread);
  const float s = spread_scale(half_spread);
  float sum = 0.0f;
  for (uint b = simd_lane; b < blocks; b += lanes) {
    const float r = s / spread_scale(p[b].z);  // an exact power of two <= 1
    sum += float(min(slice, group_elems - b * slice)) * (p[b].x * r);
  }
  const float mean = simd_sum(sum) / float(group_elems);
  float m2 = 0.0f;
  for (uint b = simd_lane; b < blocks; b += lanes) {
    const float4 q = p[b];
    const float r = s / spread_scale(q.z);
    const float e = q.x * r - mean;
    m2 += q.y * r * r + float(min(slice, group_elems - b * slice)) * e * e;
  }
  const float var = simd_sum(m2) / float(group_elems);
  // eps in d * s units is eps * s^2; where that overflows (tiny values, s up to 2^127) var <= 2^42 is negligible
  // beside it, and rsqrt(eps * s^2) = rsqrt(eps) / s.
  const float eps_s = eps * s * s;
  float inv_std = is_nonfinite(eps_s) ? ldexp(metal::precise::rsqrt(eps), -(int((as_type<uint>(s) >> 23) & 0xffu) - 127))
                                      : metal::precise::rsqrt(var + eps_s);
  if (is_nonfinite(half_spread)) {
    inv_std = as_type<float>(0x7fc00000u);  // inf or NaN in the group: NaN throughout
  }
  return RowStatistics{s, k * s, mean, inv_std};
}

template <typename T>
[[kernel]] void group_norm_apply(
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    const device T* bias [[buffer(2), function_constant(has_bias)]],
    device T* out [[buffer(3)]],
    const device float4* partials [[buffer(4)]],
    constant float& eps [[buffer(5)]],
    constant uint& group_elems [[buffer(6)]],
    constant uint& spatial [[buffer(7)]],
    constant uint& groups [[buffer(8)]],
    constant uint& slice [[buffer(9)]],
    constant uint& blocks [[buffer(10)]],
    uint tg [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  constexpr int N = ChunkOf<T>::N;
  const GroupBlock gb = group_block(tg, blocks, slice, group_elems);
  const size_t span = size_t(gb.group) * group_elems;
  const device T* xb = x + span + gb.origin;
  device T* ob = out + span + gb.origin;
  const uint chunks = (gb.size + N - 1) / N;
  const bool vec = aligned16(xb) && aligned16(ob);
  const uint first_channel = (gb.group % groups) * (group_elems / spatial);

  float v[N_CHUNKS * N];
  for (int s = 0; s < N_CHUNKS; s++) {  // in flight while the partials are merged
    load_chunk(xb, lid + s * threads, gb.size, vec, v + s * N);
  }
  const RowStatistics st = merge_group_partials(partials + size_t(gb.group) * blocks, blocks, slice, group_elems,
                                                float(x[span]), eps, simd_lane,
                                                min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE));
  for (int s = 0; s < N_CHUNKS; s++) {
    const uint c = lid + s * threads;
    if (c < chunks) {
      for (int i = 0; i < N; i++) {
        v[s * N + i] = (fma(v[s * N + i], st.scale, -st.shift) - st.mean) * st.inv_std;
      }
      store_group_chunk(ob, weight, bias, c, gb.size, vec, first_channel, spatial, gb.origin, v + s * N);
    }
  }
  for (uint c = lid + N_CHUNKS * threads; c < chunks; c += threads) {  // a threadgroup smaller than the plan's
    float h[N];
    load_chunk(xb, c, gb.size, vec, h);
    for (int i = 0; i < N; i++) {
      h[i] = (fma(h[i], st.scale, -st.shift) - st.mean) * st.inv_std;
    }
    store_group_chunk(ob, weight, bias, c, gb.size, vec, first_channel, spatial, gb.origin, h);
  }
}

// Host names: group_norm_<dtype>.
#define INSTANTIATE_GROUP_NORM(name, T)                                                                       \
  template [[host_name("group_norm_" #name)]] [[kernel]] decltype(group_norm<T>) group_norm<T>;             \
  template [[host_name("group_norm_partials_" #name)]] [[kernel]] decltype(group_norm_partials<T>)          \
      group_norm_partials<T>;                                                                                \
  template [[host_name("group_norm_apply_" #name)]] [[kernel]] decltype(group_norm_apply<T>) group_norm_apply<T>;

INSTANTIATE_GROUP_NORM(float32, float)
INSTANTIATE_GROUP_NORM(float16, half)
INSTANTIATE_GROUP_NORM(bfloat16, bfloat)
