// GroupNorm over NCHW-style inputs (N, C, *spatial), C split into `groups` groups of C/G consecutive channels:
//
//   out[n, c, s] = (x[n, c, s] - mean_{n,g}) * rsqrt(var_{n,g} + eps) [* weight[c]] [+ bias[c]]   (biased variance)
//
// where (n, g) runs over the C/G * HW elements of group g of sample n. In a contiguous (N, C, *) tensor these are
// one contiguous span of group_elems = C/G * HW elements starting at (n * G + g) * group_elems, so the kernel is a
// row norm over that span, the channel of element k of the span being g * C/G + k / HW (one division per 16-byte
// chunk, only with an affine).
//
// Memory: the span moves in 16-byte chunks (metal/chunk_io.h: 4 floats or 8 halves / bfloats); thread lid takes
// chunks lid + j * threads (a SIMD group moves one contiguous 512-byte span per step). Whole chunks of a 16-byte
// aligned span are single 16-byte loads and stores; the span's last partial chunk, or an unaligned span (a group
// size that is not a whole number of chunks, a storage offset), goes element by element with a guard on each.
//
// Registers: a thread keeps the chunks it holds as their raw 16 bytes (a uint4: 4 32-bit registers for 4 floats
// or for 8 halves / bfloats), converted to fp32 where used. Holding fp32 copies, as this file did before, took 8
// registers per 16-bit chunk: the 16-bit kernels then kept their arrays in local memory on the NVIDIA lane
// (benches/lane_registers.py, sm_90, worst over the function-constant specialisations; stack / spill bytes):
//                         before (floats held, 1024-thread bound)  after (raw chunks; bounds 512 / 256 / 256)
//   group_norm            bf16 160/120, f16 40/124, f32 0/0        bf16 24/24, f16 0/0, f32 0/0
//   group_norm_partials   bf16 32/60,   f16 32/60,  f32 0/0        bf16 0/0,   f16 24/20, f32 0/0
//   group_norm_apply      bf16 144/12,  f16 0/0,    f32 0/0        0/0 in every dtype
// (the small frames left are not held arrays: suspected the fp32 division's called slow path and, for the bf16
// one-block kernel, pressure at its 128-register bound; open work.) Chunks are packed and unpacked by
// metal/chunk_bits.h, as in the row kernels: this file's own copies (bfloat rounded by bit arithmetic, 8 integer
// operations and a select per value) made the bf16 one-block kernel 1.39x slower on the lane (8 x 512 x 64 x 64
// bf16 51.6 -> 37.1 us once packing used the language's conversion, fp16's time), and with them gone its worst
// frame went from 96/108 B to 24/24 (ptxas). The statistics' chunk sums then took whole chunks without a guard per
// value (metal/rows.h's add_shifted / add_squared_deviations, as layer_norm): bf16 one-block 24/24 -> 16/20 B,
// fp16 partials 24/20 -> 16/16 (ptxas). The lane's time of these two steps, side by side with the file before them
// (H100, twice): 8 x 512 x 64 x 64 16-bit 1.07x faster, fp32 unchanged; 1 x 320 x 128 x 128 (the split path) bf16
// 0.87x (17.5 -> 20.2 us), fp16 and fp32 unchanged. The bf16 loss came with chunk_bits.h's unpacking (a conversion
// per value where this file shifted the bits); a shift form there put more in local memory elsewhere (docs/trust.md).
// Apple GPUs have native 16-bit registers, so the raw form costs them no more than halves would; the per-thread
// footprint is what sets how many threads a core keeps resident (lane figures are evidence, not Apple speeds).
//
// Statistics in fp32, stably: values shifted by the span's first value k (d = v - k: a constant group normalises
// to exactly 0, NaN at eps = 0, as PyTorch; see metal/rows.h), sum of d -> mean, then sum of (d - mean)^2 over the
// held chunks; chunks past the held ones keep a running per-thread count / mean / m2 merged a chunk at a time
// (Chan et al.) and contribute m2 + count * (mean_t - mean)^2, so the statistics read every element once. Both
// reductions: simd_sum, then across SIMD groups through threadgroup memory. A group whose fp32 sums overflow
// although its values are finite (or whose variance underflows) is done again on values scaled by a power of two
// (one max reduction more, one more read of the chunks past the held ones, for such groups only); inf or NaN
// anywhere in the group gives NaN throughout.
//
// Two plans (the host, src/mpskernels/kernels/group_norm.py, picks one):
//   group_norm: one threadgroup per (sample, group), up to 512 threads (the host's ONE_BLOCK_THREADS; Apple: SIMD
//     width 32, at most 1024 threads per threadgroup), each holding HELD_CHUNKS = 8 chunks (32 registers): 16384
//     floats or 32768 halves at 512 threads. Past that, the statistics pass streams the rest (4 chunks in flight
//     per thread) and the normalising pass reads it again right after, while the span (256 KB for 65536 floats)
//     is still in the last-level cache (24-96 MB SLC on Apple GPUs, 50 MB L2 on the lane's H100/H200).
//     Bytes per element (E = sizeof(T)) from memory: 2E (read once, write once) wherever the group is held; the
//     elements past it are read twice, the second time from cache. Taken wherever the groups fill the GPU.
//   group_norm_partials + group_norm_apply (the split path, below): a group over blocks of 256 threads x 4 chunks
//     (16 KiB), for groups too few to fill the GPU (image models: 32 groups x 1-8 samples of 16k-160k elements;
//     Apple GPUs have 10-80 cores wanting several resident threadgroups each). x read twice (partials, then
//     normalise) = 3E against 2E; the second read is served from the last-level cache where the tensor fits it,
//     which is when groups are few (1x320x128x128: 10.5 MB in bf16, 21 MB in fp32).
// Lane (H200, before this change; % of copy bandwidth for 2E): 8x512x64x64 bf16 19%, fp16 37%, fp32 57%;
// 1x320x128x128 bf16 19%, fp16 36%, fp32 53% (both cases took the split path then; 8x512x64x64 now takes the
// one-block kernel: its 256 groups of 1024 threads fill the GPU, and a 16-bit group is held whole). Now (H100 lane,
// full run at f11f7ae, docs/anchor-lane.md; bf16/fp16/fp32): 8x512x64x64 64/64/64%, below issue 13's 85%. Likely
// why (not profiled): its groups of 65536 elements are held only in part (half in 16-bit, a quarter in fp32; the
// rest read twice, the second time from the L2), and 512 threads at 100-128 registers (ptxas) take 51200-65536 of
// an H100 SM's 65536, so an SM runs one group at a time and its reads, reductions and write take turns.
// 1x320x128x128 (fits the L2) 37/43/49%. Tried (H100 lane, 2026-12-07, side by side in one device call): the
// one-block kernel at 256 threads (two groups an SM at 128/111/99 registers, each holding half as much and reading
// the rest twice): 8x512x64x64 0.90-0.92x (bf16 34.7 -> 38.0 us, fp32 69.6 -> 77.4), 1x320x128x128 (the split
// path, unchanged) 1.00-1.01x: not kept. So two resident groups do not pay for the second read of the part not
// held; the time is not the one-group-at-a-time of the reading above alone (still not profiled).
// weight and bias: one value per channel (C/G per group), loaded per chunk where a chunk lies in one channel.
// `has_weight` and `has_bias` are function constants: absent ones bind no buffer and cost no branch.
#include <metal_stdlib>
using namespace metal;

#include "rows.h"

constant bool has_weight [[function_constant(0)]];
constant bool has_bias [[function_constant(1)]];

constant constexpr int HELD_CHUNKS = 8;   // chunks a thread of the one-block kernel holds (4 registers each)
constant constexpr int BLOCK_CHUNKS = 4;  // chunks a thread of the split path holds (a block is 256 x 4 chunks)
constant constexpr int BATCH = 4;         // chunks past the held ones loaded together: 64 bytes in flight

// Chunk c element by element, each guarded (0 past n), as raw bits: 16-bit elements read as ushort (no
// conversion), fp32 ones as uint.
template <typename T>
inline uint4 load_bits_guarded(const device T* p, uint c, uint n) {
  constexpr int N = ChunkOf<T>::N;
  constexpr int PER_WORD = N / 4;  // elements per 32-bit word: 2, or 1 for fp32
  const uint base = c * N;
  uint w[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    w[j] = 0u;
#pragma unroll
    for (int i = 0; i < PER_WORD; i++) {
      const uint e = base + j * PER_WORD + i;
      if (e < n) {
        const uint bits = PER_WORD == 2 ? uint(reinterpret_cast<const device ushort*>(p)[e])
                                        : reinterpret_cast<const device uint*>(p)[e];
        w[j] |= bits << (16 * i);
      }
    }
  }
  return uint4(w[0], w[1], w[2], w[3]);
}

// Chunk c of an n-element span: one 16-byte load where whole and `vec`, else guarded elements (0 past n).
template <typename T>
inline uint4 load_bits(const device T* p, uint c, uint n, bool vec) {
  constexpr int N = ChunkOf<T>::N;
  if (vec && c * N + N <= n) {
    return *reinterpret_cast<const device uint4*>(p + c * N);
  }
  return load_bits_guarded(p, c, n);
}

// ---- statistics of a span held partly in registers ----

// The values one threadgroup reduces: n elements, thread lid of `threads` holding chunks lid + j * threads.
struct Span {
  uint n;
  uint lid;
  uint threads;
  bool vec;  // 16-byte aligned (x, and out where written)
};

// Sum of d = v * s - ks over the first `valid` values of a chunk.
template <typename T>
inline float chunk_sum(uint4 bits, int valid, float s, float ks) {
  constexpr int N = ChunkOf<T>::N;
  float f[N];
  unpack_chunk<T>(bits, f);
  float sum = 0.0f;
  add_shifted<N>(f, valid, s, ks, sum);  // whole chunks without a guard per value (metal/rows.h)
  return sum;
}

// Sum of (d - mean)^2 over the first `valid` values of a chunk.
template <typename T>
inline float chunk_m2(uint4 bits, int valid, float s, float ks, float mean) {
  constexpr int N = ChunkOf<T>::N;
  float f[N];
  unpack_chunk<T>(bits, f);
  float m2 = 0.0f;
  add_squared_deviations<N>(f, valid, s, ks, mean, m2);
  return m2;
}

// (mean, variance) of d = v * s - ks over the span: NC held chunks, the rest streamed BATCH chunks at a time.
// Two reductions, through partials_a then partials_b.
template <typename T, int NC>
inline float2 span_moments(thread const uint4* held, const device T* x, Span sp, float s, float ks, uint simd_lane,
                           uint simd_group, threadgroup float* partials_a, threadgroup float* partials_b) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (sp.n + N - 1) / N;
  const uint P = sp.threads;
  float sum = 0.0f;
  #pragma unroll
  for (int j = 0; j < NC; j++) {
    sum += chunk_sum<T>(held[j], chunk_valid(sp.lid + j * P, sp.n, N), s, ks);
  }
  TailMoments tail = {0.0f, 0.0f, 0.0f};  // metal/rows.h
  for (uint c = sp.lid + NC * P; c < chunks; c += BATCH * P) {
    uint4 b[BATCH];
    #pragma unroll
    for (int k = 0; k < BATCH; k++) {  // all loads issued before the first is used
      b[k] = load_bits(x, c + k * P, sp.n, sp.vec);
    }
    #pragma unroll
    for (int k = 0; k < BATCH; k++) {
      const int valid = chunk_valid(c + k * P, sp.n, N);
      if (valid > 0) {  // the batch may reach past the span
        sum += merge_tail_chunk<T>(tail, b[k], valid, s, ks);
      }
    }
  }
  const float mean = threadgroup_sum(sum, partials_a, P, simd_lane, simd_group) / float(sp.n);
  float m2 = 0.0f;
  #pragma unroll
  for (int j = 0; j < NC; j++) {
    m2 += chunk_m2<T>(held[j], chunk_valid(sp.lid + j * P, sp.n, N), s, ks, mean);
  }
  if (tail.count > 0.0f) {
    const float e = tail.mean - mean;
    m2 += tail.m2 + tail.count * e * e;
  }
  return float2(mean, threadgroup_sum(m2, partials_b, P, simd_lane, simd_group) / float(sp.n));
}

// max(spread, |v - k| / 2) over a chunk's first `valid` values; inf where one is inf or NaN.
template <typename T>
inline float chunk_half_spread(uint4 bits, int valid, float k, float spread) {
  constexpr int N = ChunkOf<T>::N;
  float f[N];
  unpack_chunk<T>(bits, f);
  for (int i = 0; i < N; i++) {
    const float d = fma(f[i], 0.5f, -0.5f * k);  // halved: cannot overflow
    if (i < valid) {
      spread = is_nonfinite(d) ? as_type<float>(0x7f800000u) : max(spread, abs(d));
    }
  }
  return spread;
}

// Half the largest |v - k| over the span, or inf if it holds inf or NaN. One reduction, through `partials`.
template <typename T, int NC>
inline float span_half_spread(thread const uint4* held, const device T* x, Span sp, float k, uint simd_lane,
                              uint simd_group, threadgroup float* partials) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (sp.n + N - 1) / N;
  const uint P = sp.threads;
  float spread = 0.0f;
  #pragma unroll
  for (int j = 0; j < NC; j++) {
    spread = chunk_half_spread<T>(held[j], chunk_valid(sp.lid + j * P, sp.n, N), k, spread);
  }
  for (uint c = sp.lid + NC * P; c < chunks; c += BATCH * P) {
    uint4 b[BATCH];
    #pragma unroll
    for (int k2 = 0; k2 < BATCH; k2++) {
      b[k2] = load_bits(x, c + k2 * P, sp.n, sp.vec);
    }
    #pragma unroll
    for (int k2 = 0; k2 < BATCH; k2++) {
      spread = chunk_half_spread<T>(b[k2], chunk_valid(c + k2 * P, sp.n, N), k, spread);
    }
  }
  return threadgroup_max(spread, partials, P, simd_lane, simd_group);
}

// A power of two s for values whose largest |d| is 2 * half_spread: |d * s| in [2^20, 2^21), so the sums of d * s
// and of its square neither overflow nor underflow (1 for a constant span, or one holding inf or NaN).
inline float spread_scale(float half_spread) {
  if (half_spread == 0.0f || is_nonfinite(half_spread)) {
    return 1.0f;
  }
  const uint e = (as_type<uint>(half_spread) >> 23) & 0xffu;  // 0 for a subnormal: the clamp still holds
  return as_type<float>(uint(clamp(273 - int(e), 1, 254)) << 23);
}

// rsqrt(var + eps * s^2) for the variance of d * s. Where eps * s^2 overflows (tiny values, s up to 2^127) the
// variance (<= 2^42) is negligible beside it, and rsqrt(eps * s^2) = rsqrt(eps) / s.
inline float scaled_inv_std(float var, float eps, float s) {
  const float eps_s = eps * s * s;
  return is_nonfinite(eps_s) ? ldexp(metal::precise::rsqrt(eps), -(int((as_type<uint>(s) >> 23) & 0xffu) - 127))
                             : metal::precise::rsqrt(var + eps_s);
}

// normalised = (fma(v, scale, -shift) - mean) * inv_std
struct GroupStatistics {
  float scale;
  float shift;
  float mean;
  float inv_std;
};

// The span's statistics: the ordinary pass (s = 1), and the scaled one for spans whose fp32 sums overflow or
// whose variance underflows. Uniform over the threadgroup (each branch follows a reduction).
template <typename T, int NC>
inline GroupStatistics span_statistics(thread const uint4* held, float k, const device T* x, Span sp, float eps,
                                       uint simd_lane, uint simd_group, threadgroup float* partials_a,
                                       threadgroup float* partials_b) {
  float2 m = span_moments<T, NC>(held, x, sp, 1.0f, k, simd_lane, simd_group, partials_a, partials_b);
  float s = 1.0f;
  if (is_nonfinite(m.y) || m.y + eps < 7.8886090522101181e-31f) {  // 2^-100
    const float half_spread = span_half_spread<T, NC>(held, x, sp, k, simd_lane, simd_group, partials_a);
    if (is_nonfinite(half_spread)) {
      m.y = as_type<float>(0x7fc00000u);  // inf or NaN in the span: NaN throughout
    } else if (half_spread > 0.0f) {      // a constant span keeps variance 0 (0 * rsqrt(eps), NaN at eps = 0)
      s = spread_scale(half_spread);
      m = span_moments<T, NC>(held, x, sp, s, k * s, simd_lane, simd_group, partials_b, partials_a);
    }
  }
  return GroupStatistics{s, k * s, m.x, scaled_inv_std(m.y, eps, s)};
}

// ---- normalise and store ----

// Stores chunk c of `out` (size elements; y holds the normalised values), applying each element's channel affine.
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
        y[i] = fma(y[i], w, b);
      }
    } else {
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
  }
  if (vec && c * N + N <= size) {  // one 16-byte store
    *reinterpret_cast<device uint4*>(out + c * N) = pack_chunk<T>(y);
  } else {
    store_chunk(out, c, size, vec, y);
  }
}

// Normalises a chunk of raw bits and stores it as chunk c of out (see store_group_chunk).
template <typename T>
inline void store_normalised(device T* out, const device T* x, const device T* weight, const device T* bias,
                             uint c, Span sp, uint first_channel, uint spatial, uint origin, uint4 bits,
                             GroupStatistics st) {
  constexpr int N = ChunkOf<T>::N;
  float y[N];
  unpack_chunk<T>(bits, y);
  for (int i = 0; i < N; i++) {
    y[i] = (fma(y[i], st.scale, -st.shift) - st.mean) * st.inv_std;
  }
  store_group_chunk(out, weight, bias, c, sp.n, sp.vec, first_channel, spatial, origin, y);
}

// Normalises the span: the NC held chunks, then the rest read again BATCH chunks at a time.
template <typename T, int NC>
inline void normalise_span(thread const uint4* held, const device T* x, device T* out, const device T* weight,
                           const device T* bias, Span sp, uint first_channel, uint spatial, uint origin,
                           GroupStatistics st) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (sp.n + N - 1) / N;
  const uint P = sp.threads;
  #pragma unroll
  for (int j = 0; j < NC; j++) {
    const uint c = sp.lid + j * P;
    if (c < chunks) {
      store_normalised(out, x, weight, bias, c, sp, first_channel, spatial, origin, held[j], st);
    }
  }
  for (uint c = sp.lid + NC * P; c < chunks; c += BATCH * P) {
    uint4 b[BATCH];
    #pragma unroll
    for (int k = 0; k < BATCH; k++) {
      b[k] = load_bits(x, c + k * P, sp.n, sp.vec);
    }
    #pragma unroll
    for (int k = 0; k < BATCH; k++) {
      if (c + k * P < chunks) {
        store_normalised(out, x, weight, bias, c + k * P, sp, first_channel, spatial, origin, b[k], st);
      }
    }
  }
}

// ---- the one-block kernel: one threadgroup per (sample, group) ----

template <typename T>
[[kernel, max_total_threads_per_threadgroup(512)]] void group_norm(  // 512: the host's ONE_BLOCK_THREADS
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
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];

  const size_t span = size_t(group_index) * group_elems;
  x += span;
  out += span;
  const Span sp = {group_elems, lid, threads, aligned16(x) && aligned16(out)};
  const uint first_channel = (group_index % groups) * (group_elems / spatial);

  uint4 held[HELD_CHUNKS];
  #pragma unroll
  for (int j = 0; j < HELD_CHUNKS; j++) {  // all loads issued before the first reduction
    held[j] = load_bits(x, lid + j * threads, sp.n, sp.vec);
  }
  const GroupStatistics st = span_statistics<T, HELD_CHUNKS>(held, float(x[0]), x, sp, eps, simd_lane, simd_group,
                                                             partials_a, partials_b);
  normalise_span<T, HELD_CHUNKS>(held, x, out, weight, bias, sp, first_channel, spatial, 0, st);
}

// ---- The split path: a group over several threadgroups (blocks), two dispatches ----
//
// Block b of group (n, g) owns elements [b * slice, min((b + 1) * slice, group_elems)) of the group's span (slice a
// whole number of chunks, so a block's chunks are 16-byte aligned wherever the span is). The host launches blocks
// of 256 threads holding slice = 256 * BLOCK_CHUNKS chunks; smaller threadgroups stream the rest of their slice.
//   group_norm_partials: each block loads its slice (all loads issued before the first reduction) and writes
//     (mean, m2, half spread) of its values d = v - k, k the group's first value (as the one-block kernel), to
//     partials[group * blocks + b]. The moments are of d * s_b, s_b = spread_scale(half spread): a power of two
//     putting the block's largest |d * s_b| in [2^20, 2^21), so they neither overflow (bf16/fp32 values near the
//     float max) nor underflow (tiny values at eps = 0) whatever the data, with no branch.
//   group_norm_apply: each block issues its slice's loads, then every SIMD group merges the group's `blocks`
//     partials itself (no barrier): s = spread_scale(max half spread), each block's moments rescaled by the exact
//     power of two s / s_b (<= 1) and merged (Chan et al.), then normalises its slice and applies the affine.
// Same statistics as the one-block kernel (a constant group gives exactly 0, NaN at eps = 0; inf or NaN anywhere
// in the group gives NaN throughout), computed in a different order.
// Both kernels declare at most 256 threads (the host's block): a compiler may then give each thread more registers.

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
[[kernel, max_total_threads_per_threadgroup(256)]] void group_norm_partials(  // 256: the host's BLOCK_THREADS
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
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];

  const GroupBlock gb = group_block(tg, blocks, slice, group_elems);
  const device T* group_x = x + size_t(gb.group) * group_elems;
  const device T* xb = group_x + gb.origin;
  const Span sp = {gb.size, lid, threads, aligned16(xb)};

  uint4 held[BLOCK_CHUNKS];
  #pragma unroll
  for (int j = 0; j < BLOCK_CHUNKS; j++) {
    held[j] = load_bits(xb, lid + j * threads, sp.n, sp.vec);
  }
  const float k = float(group_x[0]);
  const float half_spread = span_half_spread<T, BLOCK_CHUNKS>(held, xb, sp, k, simd_lane, simd_group, partials_a);
  const float s = spread_scale(half_spread);
  const float2 moments = span_moments<T, BLOCK_CHUNKS>(held, xb, sp, s, k * s, simd_lane, simd_group, partials_b,
                                                       partials_a);
  if (lid == 0) {
    partials[tg] = float4(moments.x, moments.y * float(gb.size), half_spread, 0.0f);
  }
}

// The group's statistics from its blocks' partials, merged by each SIMD group on its own (`lanes` of them: the
// threadgroup's last SIMD group may be partial).
inline GroupStatistics merge_group_partials(const device float4* p, uint blocks, uint slice, uint group_elems,
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
  float inv_std = scaled_inv_std(simd_sum(m2) / float(group_elems), eps, s);
  if (is_nonfinite(half_spread)) {
    inv_std = as_type<float>(0x7fc00000u);  // inf or NaN in the group: NaN throughout
  }
  return GroupStatistics{s, k * s, mean, inv_std};
}

template <typename T>
[[kernel, max_total_threads_per_threadgroup(256)]] void group_norm_apply(  // 256: the host's BLOCK_THREADS
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
  const GroupBlock gb = group_block(tg, blocks, slice, group_elems);
  const size_t span = size_t(gb.group) * group_elems;
  const device T* xb = x + span + gb.origin;
  device T* ob = out + span + gb.origin;
  const Span sp = {gb.size, lid, threads, aligned16(xb) && aligned16(ob)};
  const uint first_channel = (gb.group % groups) * (group_elems / spatial);

  uint4 held[BLOCK_CHUNKS];
  #pragma unroll
  for (int j = 0; j < BLOCK_CHUNKS; j++) {  // in flight while the partials are merged
    held[j] = load_bits(xb, lid + j * threads, sp.n, sp.vec);
  }
  const GroupStatistics st = merge_group_partials(partials + size_t(gb.group) * blocks, blocks, slice, group_elems,
                                                  float(x[span]), eps, simd_lane,
                                                  min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE));
  normalise_span<T, BLOCK_CHUNKS>(held, xb, ob, weight, bias, sp, first_channel, spatial, gb.origin, st);
}

// Host names: group_norm_<dtype>, group_norm_partials_<dtype>, group_norm_apply_<dtype>.
#define INSTANTIATE_GROUP_NORM(name, T)                                                                       \
  template [[host_name("group_norm_" #name)]] [[kernel]] decltype(group_norm<T>) group_norm<T>;             \
  template [[host_name("group_norm_partials_" #name)]] [[kernel]] decltype(group_norm_partials<T>)          \
      group_norm_partials<T>;                                                                                \
  template [[host_name("group_norm_apply_" #name)]] [[kernel]] decltype(group_norm_apply<T>) group_norm_apply<T>;

INSTANTIATE_GROUP_NORM(float32, float)
INSTANTIATE_GROUP_NORM(float16, half)
INSTANTIATE_GROUP_NORM(bfloat16, bfloat)
