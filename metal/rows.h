// What the row kernels (metal/rms_norm.metal, metal/layer_norm.metal, metal/group_norm.metal) share: which row a
// thread works on, the row's sum and max over its threads, the fused residual add, and the mean / variance
// statistics of the LayerNorm-style kernels (row_statistics, at the end).
//
// Layouts (sizes for Apple GPUs: SIMD width 32, at most 1024 threads per threadgroup):
//   W x R threadgroups: W lanes per row (a power of two up to 32), R rows per threadgroup; a SIMD group holds
//     32 / W rows. The row reduces with one simd_sum (W = 32) or a simd_shuffle_xor butterfly over its W lanes:
//     no threadgroup memory, no barrier.
//   P x 1 threadgroups: one threadgroup of P threads per row; the row reduces with simd_sum and then across SIMD
//     groups through threadgroup memory.
// The row is threadgroup_position_in_grid.x * R + thread_position_in_threadgroup.y (R = threads_per_threadgroup.y),
// so the grid must hold whole threadgroups along y, and a threadgroup with R > 1 must be a power of two wide.
#pragma once
#include <metal_stdlib>
using namespace metal;

#include "chunk_bits.h"

constant constexpr int SIMD_SIZE = 32;

// Sum of `value` over the threadgroup, returned to every thread. `partials` holds one float per SIMD group and
// must not be reused by a later reduction in the same threadgroup without a barrier.
inline float threadgroup_sum(float value, threadgroup float* partials, uint threads, uint simd_lane,
                             uint simd_group) {
  value = simd_sum(value);
  if (simd_lane == 0) {
    partials[simd_group] = value;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint num_groups = (threads + SIMD_SIZE - 1) / SIMD_SIZE;
  const uint lanes = min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE);  // the last group may be partial
  float total = 0.0f;
  for (uint i = simd_lane; i < num_groups; i += lanes) {
    total += partials[i];
  }
  return simd_sum(total);
}

// Max of `value` over the threadgroup, returned to every thread (same partials rule as threadgroup_sum).
inline float threadgroup_max(float value, threadgroup float* partials, uint threads, uint simd_lane,
                             uint simd_group) {
  value = simd_max(value);
  if (simd_lane == 0) {
    partials[simd_group] = value;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint num_groups = (threads + SIMD_SIZE - 1) / SIMD_SIZE;
  const uint lanes = min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE);
  float total = 0.0f;  // the values reduced here are >= 0
  for (uint i = simd_lane; i < num_groups; i += lanes) {
    total = max(total, partials[i]);
  }
  return simd_max(total);
}

// The row a thread works on, its index among the row's threads, and how many threads the row has.
struct RowSlot {
  uint row;
  uint lid;
  uint threads;
};

inline RowSlot row_slot(uint2 group_pos, uint2 lid, uint2 group_size) {
  return RowSlot{group_pos.x * group_size.y + lid.y, lid.x, group_size.x};
}

// Whether the row's P threads are a power of two below 32: then (W x R layout) a SIMD group holds 32 / P rows,
// each on P consecutive lanes aligned to P, and the row reduces with a butterfly over those lanes.
inline bool row_shares_simd_group(RowSlot s) {
  return s.threads < SIMD_SIZE && (s.threads & (s.threads - 1)) == 0;
}

// Sum over the row's threads: a butterfly over its lanes (W x R, W < 32), one SIMD group (P <= 32, including the
// 32 x R layout), or the whole threadgroup. The butterfly leaves the same value on every lane of the row.
inline float row_sum(float value, RowSlot s, threadgroup float* partials, uint simd_lane, uint simd_group) {
  if (row_shares_simd_group(s)) {
    for (uint w = s.threads / 2; w > 0; w /= 2) {
      value += simd_shuffle_xor(value, ushort(w));
    }
    return value;
  }
  if (s.threads <= SIMD_SIZE) {
    return simd_sum(value);
  }
  return threadgroup_sum(value, partials, s.threads, simd_lane, simd_group);
}

// Max over the row's threads (of values >= 0).
inline float row_max(float value, RowSlot s, threadgroup float* partials, uint simd_lane, uint simd_group) {
  if (row_shares_simd_group(s)) {
    for (uint w = s.threads / 2; w > 0; w /= 2) {
      value = max(value, simd_shuffle_xor(value, ushort(w)));
    }
    return value;
  }
  if (s.threads <= SIMD_SIZE) {
    return simd_max(value);
  }
  return threadgroup_max(value, partials, s.threads, simd_lane, simd_group);
}

// Two sums over the threadgroup in one exchange: .x through partials_x, .y through partials_y (one barrier).
inline float2 threadgroup_sum2(float2 value, threadgroup float* partials_x, threadgroup float* partials_y,
                               uint threads, uint simd_lane, uint simd_group) {
  value = float2(simd_sum(value.x), simd_sum(value.y));
  if (simd_lane == 0) {
    partials_x[simd_group] = value.x;
    partials_y[simd_group] = value.y;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint num_groups = (threads + SIMD_SIZE - 1) / SIMD_SIZE;
  const uint lanes = min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE);
  float2 total = float2(0.0f);
  for (uint i = simd_lane; i < num_groups; i += lanes) {
    total += float2(partials_x[i], partials_y[i]);
  }
  return float2(simd_sum(total.x), simd_sum(total.y));
}

// row_sum of both components at once (threadgroup rows: one barrier for the two).
inline float2 row_sum2(float2 value, RowSlot s, threadgroup float* partials_x, threadgroup float* partials_y,
                       uint simd_lane, uint simd_group) {
  if (row_shares_simd_group(s)) {
    for (uint w = s.threads / 2; w > 0; w /= 2) {
      value += float2(simd_shuffle_xor(value.x, ushort(w)), simd_shuffle_xor(value.y, ushort(w)));
    }
    return value;
  }
  if (s.threads <= SIMD_SIZE) {
    return float2(simd_sum(value.x), simd_sum(value.y));
  }
  return threadgroup_sum2(value, partials_x, partials_y, s.threads, simd_lane, simd_group);
}

// Before a reduction reuses partials that threads may still be reading from the one before. Only a row that has
// its threadgroup to itself reduces through threadgroup memory, so the barrier is uniform wherever it is taken.
inline void partials_barrier(RowSlot s) {
  if (!row_shares_simd_group(s) && s.threads > SIMD_SIZE) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

// Chunk j of a thread's held chunks (their bits, metal/chunk_bits.h) as fp32.
template <typename T>
inline void held_chunk(thread const uint4* v, int j, thread float* out) {
  unpack_chunk<T>(v[j], out);
}

// The residual sum of two chunks, each value rounded to T once (as the unfused `h = x + residual` in T).
template <typename T>
inline uint4 add_chunks(uint4 x_bits, uint4 r_bits) {
  constexpr int N = ChunkOf<T>::N;
  float h[N];
  float r[N];
  unpack_chunk<T>(x_bits, h);
  unpack_chunk<T>(r_bits, r);
  for (int i = 0; i < N; i++) {
    h[i] += r[i];
  }
  return pack_chunk<T>(h);
}

// This thread's NC chunks c0 + s * P (s < NC) of the values a norm sees, as bits in v[s]: x, or the residual sum
// (add_chunks), which is also stored to residual_out. Every load (x and residual) is issued before any value is
// used; chunks past the row are 0.
template <typename T, int NC, bool RESIDUAL>
inline void load_row_chunks(const device T* x, const device T* residual, device T* residual_out, uint c0, uint P,
                            uint n, bool aligned, thread uint4* v) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
#pragma unroll  // v[s] must stay a register: a loop left rolled (a long body, bfloat) would index v in memory
  for (int s = 0; s < NC; s++) {
    const uint c = c0 + s * P;
    v[s] = c < chunks ? load_chunk_bits(x, c, n, aligned) : uint4(0);
    if (RESIDUAL) {
      const uint4 r = c < chunks ? load_chunk_bits(residual, c, n, aligned) : uint4(0);
      v[s] = add_chunks<T>(v[s], r);
      if (c < chunks) {
        store_chunk_bits(residual_out, c, n, aligned, v[s]);
      }
    }
  }
}

// ---- Mean and variance of a row (layer_norm, add_layer_norm, group_norm) ----
//
// The row's values are shifted by its first value k before anything is summed: d = v - k. Summing v itself and
// dividing by n gives a mean a few ulps off for a constant row, hence a variance of delta^2 instead of 0 and
// (v - mean) * rsqrt(delta^2 + eps) near +-1 when eps << delta^2 (BERT's eps = 1e-12). Shifted, a constant row has
// d = 0 exactly, so mean 0, variance 0 and a normalised value of exactly 0 (NaN at eps = 0, as PyTorch). The shift
// also keeps rows with a large mean and a small spread accurate. Then, as before, two passes over the registers:
// mean of d, then the sum of (d - mean)^2 (no E[x^2] - E[x]^2 cancellation).
//
// Range: d and its square are fp32, so a row of finite values spread over more than about 1e19 (bf16 or fp32
// values near +-3.4e38) overflows the sums where the exact result is finite, and one spread over less than about
// 1e-15 (tiny values) has a variance that underflows, which matters where eps does not dominate it (eps = 0).
// Such a row (variance inf or NaN with every value finite, or variance + eps below 2^-100) is done again with d
// scaled by a power of two, d * s = v * s - k * s, s chosen from the row's largest |d| (one max reduction): the
// mean and variance are then those of d * s, eps is scaled by s^2, and (d * s - mean) * rsqrt(var + eps * s^2) is
// the same normalised value. This rescue is a branch uniform over the row (it follows a reduction), taken only by
// such rows; it re-reads the chunks past the register capacity. The ordinary path costs one extra load of the
// row's first value (cached) and one fma per element. A row holding inf or NaN normalises to NaN throughout, as
// PyTorch's formula does.

// Whether x is inf or NaN, from its bits (fast math may fold isfinite / isnan away).
inline bool is_nonfinite(float x) {
  return (as_type<uint>(x) & 0x7f800000u) == 0x7f800000u;
}

// The number of the N elements of chunk c that lie inside an n-element row (0 past it).
inline int chunk_valid(uint c, uint n, int N) {
  return c * N >= n ? 0 : int(min(uint(N), n - c * N));
}

// Running count / mean / m2 of a thread's shifted values past its register capacity, merged a chunk at a time
// (Chan et al.). A constant row keeps mean = m2 = 0 exactly.
struct TailMoments {
  float count;
  float mean;
  float m2;
};

// Merges the first `valid` values d[i] = v[i] * s - ks of a chunk (its bits) into t; returns their sum. d is
// computed again (the same fma) where the second loop needs it rather than kept: 8 fewer live values.
template <typename T>
inline float merge_tail_chunk(thread TailMoments& t, uint4 bits, int valid, float s, float ks) {
  constexpr int N = ChunkOf<T>::N;
  float v[N];
  unpack_chunk<T>(bits, v);
  float c_sum = 0.0f;
  for (int i = 0; i < N; i++) {
    if (i < valid) {
      c_sum += fma(v[i], s, -ks);
    }
  }
  const float c_mean = c_sum / float(valid);
  float c_m2 = 0.0f;
  for (int i = 0; i < N; i++) {
    if (i < valid) {
      const float e = fma(v[i], s, -ks) - c_mean;
      c_m2 += e * e;
    }
  }
  const float merged = t.count + float(valid);
  const float delta = c_mean - t.mean;
  t.mean += delta * (float(valid) / merged);
  t.m2 += c_m2 + delta * delta * (t.count * float(valid) / merged);
  t.count = merged;
  return c_sum;
}

// Chunk c of a row past the register capacity, as bits. The first pass reads x (and residual, storing
// residual_out: load_row_chunks); later passes read back x, or the residual_out this thread stored.
template <typename T, bool RESIDUAL>
inline uint4 load_tail_chunk(const device T* x, const device T* residual, device T* residual_out, uint c, uint n,
                             bool vec, bool first) {
  if (first) {
    uint4 bits[1];
    load_row_chunks<T, 1, RESIDUAL>(x, residual, residual_out, c, 0, n, vec, bits);
    return bits[0];
  }
  return load_chunk_bits(RESIDUAL ? residual_out : x, c, n, vec);
}

// Adds d = e[i] * s - ks over a chunk's first `valid` values to sum, in order. A whole chunk (every chunk of a row
// but its last partial one) takes the loop without a guard: a guard per value is a compare and a select for every
// value of every chunk, to serve one chunk per row.
template <int N>
inline void add_shifted(thread const float* e, int valid, float s, float ks, thread float& sum) {
  if (valid == N) {
    for (int i = 0; i < N; i++) {
      sum += fma(e[i], s, -ks);
    }
    return;
  }
  for (int i = 0; i < N; i++) {
    if (i < valid) {
      sum += fma(e[i], s, -ks);
    }
  }
}

// add_shifted, also adding d^2 to squares.
template <int N>
inline void add_shifted_squares(thread const float* e, int valid, float s, float ks, thread float& sum,
                                thread float& squares) {
  if (valid == N) {
    for (int i = 0; i < N; i++) {
      const float d = fma(e[i], s, -ks);
      sum += d;
      squares = fma(d, d, squares);
    }
    return;
  }
  for (int i = 0; i < N; i++) {
    if (i < valid) {
      const float d = fma(e[i], s, -ks);
      sum += d;
      squares = fma(d, d, squares);
    }
  }
}

// Adds (d - mean)^2 over a chunk's first `valid` values to m2, in order; whole chunks unguarded (add_shifted).
template <int N>
inline void add_squared_deviations(thread const float* e, int valid, float s, float ks, float mean,
                                   thread float& m2) {
  if (valid == N) {
    for (int i = 0; i < N; i++) {
      const float d = fma(e[i], s, -ks) - mean;
      m2 += d * d;
    }
    return;
  }
  for (int i = 0; i < N; i++) {
    if (i < valid) {
      const float d = fma(e[i], s, -ks) - mean;
      m2 += d * d;
    }
  }
}

// Sum of (d - mean)^2 over this thread's NC held chunks of the row (held_chunk), d = v * s - ks.
template <typename T, int NC>
inline float held_squared_deviations(thread const uint4* v, uint n, RowSlot slot, float s, float ks, float mean) {
  constexpr int N = ChunkOf<T>::N;
  float m2 = 0.0f;
  for (int j = 0; j < NC; j++) {
    float e[N];
    held_chunk<T>(v, j, e);
    add_squared_deviations<N>(e, chunk_valid(slot.lid + j * slot.threads, n, N), s, ks, mean, m2);
  }
  return m2;
}

// E[d^2] - E[d]^2 loses log2(E[d^2] / variance) bits to cancellation; the shift by the row's first value keeps
// that ratio 1 + z^2 for a first value z standard deviations from the mean, so rows accept the one-reduction
// moments up to this ratio (at most 4 bits lost) and take the second pass over registers past it. Half rows only
// (OneReductionMoments): their outputs keep 11 bits, far below fp32's 24 less 4; an fp32 output would show the loss
// (measured on the emulator: 2.8e-6 absolute on a normalised value, past fp32's tolerance).
constant constexpr float CANCELLATION_BOUND = 16.0f;

// Whether rows of T held entirely in registers take held_row_moments: half only. bfloat keeps the two reductions:
// on the NVIDIA lane (H200, side by side in one session; not an Apple GPU) its one-reduction form was mixed,
// layer_norm 4096 x 4096 1.06x and 8 x 4096 1.14x but add_layer_norm 4096 x 4096 0.88x (46.9 -> 53.5 us), with
// its local memory grown (ptxas: layer_norm 64 -> 172 B of spills, add_layer_norm 48 -> 160 B: the lane's bfloat
// conversions), where half gained 1.05-1.17x in all four cases without any.
template <typename T>
struct OneReductionMoments {
  static constexpr constant bool value = false;
};
template <>
struct OneReductionMoments<half> {
  static constexpr constant bool value = true;
};

// (mean, variance) of d = v * s - ks over a row held entirely in registers: sum and sum of squares in one pass and
// one reduction where that is accurate (CANCELLATION_BOUND), else the sum of squared deviations from the mean in
// a second pass over the registers. A constant row gives (0, 0) exactly either way.
template <typename T, int NC>
inline float2 held_row_moments(thread const uint4* v, uint n, RowSlot slot, float s, float ks, uint simd_lane,
                               uint simd_group, threadgroup float* partials_a, threadgroup float* partials_b) {
  constexpr int N = ChunkOf<T>::N;
  const uint P = slot.threads;
  float sum = 0.0f;
  float squares = 0.0f;
  for (int j = 0; j < NC; j++) {
    float e[N];
    held_chunk<T>(v, j, e);
    add_shifted_squares<N>(e, chunk_valid(slot.lid + j * P, n, N), s, ks, sum, squares);
  }
  // Identical in every thread of the row (simd_sum, or a butterfly whose pairs add the same two values), so the
  // choice below is uniform.
  const float2 sums = row_sum2(float2(sum, squares), slot, partials_a, partials_b, simd_lane, simd_group);
  const float mean = sums.x / float(n);
  const float mean_square = sums.y / float(n);
  const float variance = mean_square - mean * mean;
  if (mean_square <= CANCELLATION_BOUND * variance) {  // false for NaN; a constant row: 0 <= 0
    return float2(mean, variance);
  }
  const float m2 = held_squared_deviations<T, NC>(v, n, slot, s, ks, mean);
  partials_barrier(slot);  // row_sum2's partials may still be being read
  return float2(mean, row_sum(m2, slot, partials_a, simd_lane, simd_group) / float(n));
}

// (mean, variance) of d = v * s - ks over the row: v holds this thread's NC register chunks (chunk lid + j * P
// is held chunk j: held_chunk), the rest comes through load_tail_chunk. Two reductions, through partials_a then
// partials_b; one for rows OneReductionMoments takes whole in registers (held_row_moments).
template <typename T, int NC, bool RESIDUAL>
inline float2 row_moments(thread const uint4* v, const device T* x, const device T* residual,
                          device T* residual_out, uint n, bool vec, RowSlot slot, bool first, float s, float ks,
                          uint simd_lane, uint simd_group, threadgroup float* partials_a,
                          threadgroup float* partials_b) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
  const uint P = slot.threads;
  if (OneReductionMoments<T>::value && NC * P >= chunks) {  // the whole row held (uniform over the row)
    return held_row_moments<T, NC>(v, n, slot, s, ks, simd_lane, simd_group, partials_a, partials_b);
  }
  float sum = 0.0f;
  for (int j = 0; j < NC; j++) {
    float e[N];
    held_chunk<T>(v, j, e);
    add_shifted<N>(e, chunk_valid(slot.lid + j * P, n, N), s, ks, sum);
  }
  TailMoments tail = {0.0f, 0.0f, 0.0f};
  for (uint c = slot.lid + NC * P; c < chunks; c += P) {
    const uint4 bits = load_tail_chunk<T, RESIDUAL>(x, residual, residual_out, c, n, vec, first);
    sum += merge_tail_chunk<T>(tail, bits, chunk_valid(c, n, N), s, ks);
  }
  const float mean = row_sum(sum, slot, partials_a, simd_lane, simd_group) / float(n);

  float m2 = held_squared_deviations<T, NC>(v, n, slot, s, ks, mean);
  if (tail.count > 0.0f) {
    const float e = tail.mean - mean;
    m2 += tail.m2 + tail.count * e * e;
  }
  return float2(mean, row_sum(m2, slot, partials_b, simd_lane, simd_group) / float(n));
}

// Half the largest |v - k| over the row (halved so it cannot overflow), or inf if the row holds inf or NaN.
template <typename T, int NC, bool RESIDUAL>
inline float row_half_spread(thread const uint4* v, const device T* x, device T* residual_out, uint n, bool vec,
                             RowSlot slot, float k, uint simd_lane, uint simd_group, threadgroup float* partials) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
  const uint P = slot.threads;
  float spread = 0.0f;
  for (int j = 0; j < NC; j++) {
    const int valid = chunk_valid(slot.lid + j * P, n, N);
    float e[N];
    held_chunk<T>(v, j, e);
    for (int i = 0; i < N; i++) {
      const float d = fma(e[i], 0.5f, -0.5f * k);
      if (i < valid) {
        spread = is_nonfinite(d) ? as_type<float>(0x7f800000u) : max(spread, abs(d));
      }
    }
  }
  for (uint c = slot.lid + NC * P; c < chunks; c += P) {
    float h[N];
    unpack_chunk<T>(load_tail_chunk<T, RESIDUAL>(x, x, residual_out, c, n, vec, false), h);
    const int valid = chunk_valid(c, n, N);
    for (int i = 0; i < N; i++) {
      const float d = fma(h[i], 0.5f, -0.5f * k);
      if (i < valid) {
        spread = is_nonfinite(d) ? as_type<float>(0x7f800000u) : max(spread, abs(d));
      }
    }
  }
  return row_max(spread, slot, partials, simd_lane, simd_group);
}

// normalised = fma(v, scale, -shift) - mean) * inv_std
struct RowStatistics {
  float scale;
  float shift;
  float mean;
  float inv_std;
};

// The row's statistics (see the section comment): the ordinary pass, and the scaled one for rows whose fp32
// sums overflow. partials_a and partials_b: one float per SIMD group each.
template <typename T, int NC, bool RESIDUAL>
inline RowStatistics row_statistics(thread const uint4* v, float k, const device T* x, const device T* residual,
                                    device T* residual_out, uint n, bool vec, RowSlot slot, float eps,
                                    uint simd_lane, uint simd_group, threadgroup float* partials_a,
                                    threadgroup float* partials_b) {
  float2 moments = row_moments<T, NC, RESIDUAL>(v, x, residual, residual_out, n, vec, slot, true, 1.0f, k,
                                                simd_lane, simd_group, partials_a, partials_b);
  float s = 1.0f;
  // Uniform over the row (both follow a reduction): an overflowed variance, or one so small (with eps) that it
  // lies in or below fp32's subnormal range (values spread over less than ~1e-15 at eps = 0: the variance
  // underflows to 0 and the normalised values to +-inf where the formula's are finite).
  if (is_nonfinite(moments.y) || moments.y + eps < 7.8886090522101181e-31f) {  // 2^-100
    partials_barrier(slot);  // the moments' last reduction may have used either partials array
    const float half_spread = row_half_spread<T, NC, RESIDUAL>(v, x, residual_out, n, vec, slot, k, simd_lane,
                                                               simd_group, partials_a);
    if (is_nonfinite(half_spread)) {
      moments.y = as_type<float>(0x7fc00000u);  // inf or NaN in the row: NaN throughout
    } else if (half_spread > 0.0f) {  // a constant row keeps variance 0 (0 * rsqrt(eps), NaN at eps = 0)
      // s = 2^(146 - E), E the biased exponent of half_spread: the largest |d * s| lands in [2^20, 2^21), so
      // the sums of d * s and of its square neither overflow nor underflow.
      const uint e = (as_type<uint>(half_spread) >> 23) & 0xffu;
      s = as_type<float>(uint(clamp(273 - int(e), 1, 254)) << 23);
      partials_barrier(slot);  // row_half_spread's partials may still be being read
      moments = row_moments<T, NC, RESIDUAL>(v, x, residual, residual_out, n, vec, slot, false, s, k * s,
                                             simd_lane, simd_group, partials_b, partials_a);
    }
  }
  return RowStatistics{s, k * s, moments.x, metal::precise::rsqrt(moments.y + eps * s * s)};
}
