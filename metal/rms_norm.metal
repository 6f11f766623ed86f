// RMSNorm over the last dimension, alone or fused with the residual add before it.
//
//   rms_norm:      out = x * rsqrt(mean(x^2) + eps) [* weight]
//   add_rms_norm:  h = T(x + residual) (rounded to T, as the unfused `h = x + residual` in T);
//                  residual_out = h;  out = h * rsqrt(mean(h^2) + eps) [* weight]
//
// Work split. A row is cut into 16-byte chunks (metal/chunk_io.h: 4 floats or 8 halves / bfloats). The P threads
// of a row take chunk c = lid + s * P at step s (consecutive threads, consecutive chunks: a SIMD group moves one
// contiguous 512-byte span per step), and keep their first N_CHUNKS chunks in registers, all loads of a thread
// issued before the reduction waits on any of them: rows up to P * N_CHUNKS chunks (16384 floats or 32768 halves
// at P = 1024) are read from memory once. Whole aligned chunks move as single 16-byte loads and stores; only the
// row's last partial chunk, or a row whose buffers are not 16-byte aligned (an odd column count, a storage
// offset), goes element by element with a guard on each.
//
// Threadgroups (sizes for Apple GPUs: SIMD width 32, at most 1024 threads). The host picks P = threads per row:
//   rows of at most 32 * 16 = 512 elements: W lanes per row, the fewest power of two holding it at 16 elements a
//   lane (a 128-element QK-norm row: 8 lanes, 4 rows per SIMD group, every lane loading; before, one SIMD group
//   per row left 24 of 32 lanes idle on such rows), R rows per W x R threadgroup (the largest power of two up to
//   256 / W dividing the row count, so every threadgroup is whole; W = 32 where no R fills a SIMD group). The sum
//   reduces with a simd_shuffle_xor butterfly over the row's W lanes (simd_sum at W = 32): no threadgroup memory,
//   no barrier, and R rows share a threadgroup's launch cost.
//   longer rows: one threadgroup per row, P = the row's elements / 16 rounded up to whole SIMD groups (at
//   most 1024): a 4096-wide fp32 row takes 256 threads, so several rows' threadgroups stay resident per core and
//   one row's loads overlap another's reduction. The sum reduces with simd_sum, then across SIMD groups through
//   threadgroup memory (one barrier: every SIMD group re-reduces the per-group partials itself).
// Threads per row (src/mpskernels/kernels/rms_norm.py, threads_per_row): the row's elements / 16 in whole SIMD
// groups, so every dtype holds 16 elements per thread (4 fp32 chunks, 2 16-bit chunks: 64 or 32 bytes in flight)
// and a 16-bit row has as many threads, and the same fp32 arithmetic per thread, as an fp32 row; only rows past
// 1024 * 16 elements hold up to N_CHUNKS = 4 chunks per thread (32768 halves) before looping. From MANY_ROWS rows
// on (prefill, batches; not decode) a 16-bit row past 512 elements holds 32 elements per thread (4 chunks, 64
// bytes, as fp32), half the threads: more rows in flight per core (the host's reasons and lane figures:
// kernels/rms_norm.py, MANY_ROWS); below FEW_ROWS rows (decode) it holds 8 elements per thread in every dtype,
// twice the threads, so each thread's part of a lone row's chain is shorter (kernels/rms_norm.py, FEW_ROWS).
// Before (H200 lane,
// % of copy bandwidth for the minimum bytes; 16-bit rows then had 4 chunks = 32 elements per thread and half the
// threads): rms_norm 4096 x 4096 bf16 57%, fp16 65%, fp32 76%; 512 x 32768 53/60/67%; add_rms_norm
//   4096 x 4096 40/40/89%. Now (H100 lane, full run at f11f7ae, docs/anchor-lane.md): rms_norm 4096 x 4096
//   85/84/92%, 512 x 32768 84/84/90%; add_rms_norm 4096 x 4096 89/90/95%.
// Held chunks (metal/rows.h): a thread keeps its N_CHUNKS chunks as the 16 bytes it loaded (a uint4, 4 registers
// for 4 floats or 8 halves / bfloats) and converts a chunk to fp32 where it is used, instead of float[4][8] for a
// 16-bit row (32 registers). The values are identical (T -> fp32 is exact), so numerics are unchanged. NVIDIA lane
// footprint (benches/lane_registers.py, ptxas sm_90, 64 registers at the 1024-thread bound), before -> after:
//   rms_norm     bf16 stack 72 B + spill 232 B -> 0 / 0;  fp16 72 + 224 -> 0 / 0;  fp32 0 / 0 -> 0 / 0
//   add_rms_norm bf16 stack 256 B             -> 0 / 0;  fp16 128      -> 0 / 0;  fp32 0 / 0 -> 0 / 0
// The residual form's pass over chunks past the register capacity takes N_CHUNKS / 2 chunks of x and of residual
// per step (the same 64 bytes in flight as rms_norm's 4 chunks of x), so those loads fit beside the held chunks.
// The row is threadgroup_position_in_grid.x * R + thread_position_in_threadgroup.y (metal/rows.h), so a 1-D grid
// of one threadgroup per row, of any size, is also correct. A threadgroup with R > 1 must be 32 wide.
//
// Numerics: the sum of squares accumulates in fp32 in a fixed order per thread (the same whichever path moves
// the bytes), and each output is rounded once.
//
// Memory traffic per element (E = sizeof(T)), rows that fit in registers — the minimum for both ops:
//   rms_norm:     read x (E), write out (E)                                              = 2E   (minimum 2E)
//   add_rms_norm: read x, residual (2E), write out, residual_out (2E)                    = 4E   (minimum 4E)
// Chunks past the register capacity: one extra read (x, or residual_out for add_rms_norm) = 3E / 5E; both passes
// over them load N_CHUNKS chunks per thread before using any.
// weight (E per element of a row) is read once per row, where it is used: cached across rows.
// `has_weight` is a function constant, so the unweighted variant carries no branch and binds no weight buffer.
// `weight_offset` (when has_weight_offset) scales by weight + offset in fp32: Gemma's RMSNorm, x_hat * (1 + w), with
// its weight stored as w; without it the kernels are unchanged.
#include <metal_stdlib>
using namespace metal;

#include "rows.h"

constant bool has_weight [[function_constant(0)]];
constant bool has_weight_offset [[function_constant(1)]];
constant float weight_offset [[function_constant(2)]];

constant constexpr int N_CHUNKS = 4;  // 16-byte chunks a thread keeps in registers

// out = v * inv_rms [* (weight [+ weight_offset])] for chunk c, v given as the chunk's bits (metal/rows.h: held chunks).
template <typename T>
inline void scale_and_store(device T* out, const device T* weight, uint c, uint n, bool vec, float inv_rms,
                            uint4 bits) {
  constexpr int N = ChunkOf<T>::N;
  float v[N];
  float w[N];
  unpack_chunk<T>(bits, v);
  if (has_weight) {
    load_chunk(weight, c, n, vec, w);
  }
  for (int i = 0; i < N; i++) {
    v[i] *= inv_rms;
    if (has_weight) {
      v[i] *= has_weight_offset ? w[i] + weight_offset : w[i];
    }
  }
  store_chunk(out, c, n, vec, v);
}

// Adds the squares of a chunk's values to sum_sq, in element order.
template <typename T>
inline void add_squares(uint4 bits, thread float& sum_sq) {
  constexpr int N = ChunkOf<T>::N;
  float v[N];
  unpack_chunk<T>(bits, v);
  for (int i = 0; i < N; i++) {
    sum_sq += v[i] * v[i];
  }
}

template <typename T, bool RESIDUAL>
inline void rms_norm_row(
    const device T* x,
    const device T* residual,
    const device T* weight,
    device T* out,
    device T* residual_out,
    float eps,
    uint n,
    RowSlot slot,
    uint simd_lane,
    uint simd_group,
    threadgroup float* partials) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
  const uint P = slot.threads;
  bool vec = aligned16(x) && aligned16(out) && (!has_weight || aligned16(weight));
  if (RESIDUAL) {
    vec = vec && aligned16(residual) && aligned16(residual_out);
  }

  // Held as loaded (metal/rows.h): 4 registers per chunk in every dtype.
  uint4 v[N_CHUNKS];
  load_row_chunks<T, N_CHUNKS, RESIDUAL>(x, residual, residual_out, slot.lid, P, n, vec, v);
  float sum_sq = 0.0f;
  for (int s = 0; s < N_CHUNKS; s++) {
    add_squares<T>(v[s], sum_sq);
  }
  // Past the register capacity: accumulate now, read again for the store. TAIL chunks per step, all loaded before
  // any is used: N_CHUNKS of x, or N_CHUNKS / 2 each of x and residual (64 bytes in flight either way), so the
  // loaded bits (16 registers) fit beside the held chunks (16 registers).
  constexpr int TAIL = RESIDUAL ? N_CHUNKS / 2 : N_CHUNKS;
  for (uint c0 = slot.lid + N_CHUNKS * P; c0 < chunks; c0 += TAIL * P) {
    uint4 h[TAIL];
    load_row_chunks<T, TAIL, RESIDUAL>(x, residual, residual_out, c0, P, n, vec, h);
    for (int s = 0; s < TAIL; s++) {
      add_squares<T>(h[s], sum_sq);
    }
  }

  const float total = row_sum(sum_sq, slot, partials, simd_lane, simd_group);
  const float inv_rms = metal::precise::rsqrt(total / float(n) + eps);

  for (int s = 0; s < N_CHUNKS; s++) {
    const uint c = slot.lid + s * P;
    if (c < chunks) {
      scale_and_store(out, weight, c, n, vec, inv_rms, v[s]);
    }
  }
  for (uint c0 = slot.lid + N_CHUNKS * P; c0 < chunks; c0 += N_CHUNKS * P) {
    uint4 h[N_CHUNKS];
    for (int s = 0; s < N_CHUNKS; s++) {
      const uint c = c0 + s * P;
      if (c < chunks) {
        h[s] = load_chunk_bits(RESIDUAL ? residual_out : x, c, n, vec);  // this thread stored residual_out's c
      }
    }
    for (int s = 0; s < N_CHUNKS; s++) {
      const uint c = c0 + s * P;
      if (c < chunks) {
        scale_and_store(out, weight, c, n, vec, inv_rms, h[s]);
      }
    }
  }
}

template <typename T>
[[kernel, max_total_threads_per_threadgroup(1024)]] void rms_norm(  // 1024: the host's MAX_GROUP
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    device T* out [[buffer(2)]],
    constant float& eps [[buffer(3)]],
    constant uint& axis_size [[buffer(4)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint2 lid [[thread_position_in_threadgroup]],
    uint2 group_size [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials[SIMD_SIZE];
  const RowSlot slot = row_slot(group_pos, lid, group_size);
  const size_t offset = size_t(slot.row) * axis_size;
  rms_norm_row<T, false>(x + offset, x, weight, out + offset, out, eps, axis_size, slot, simd_lane, simd_group,
                         partials);
}

template <typename T>
[[kernel, max_total_threads_per_threadgroup(1024)]] void add_rms_norm(  // 1024: the host's MAX_GROUP
    const device T* x [[buffer(0)]],
    const device T* residual [[buffer(1)]],
    const device T* weight [[buffer(2), function_constant(has_weight)]],
    device T* out [[buffer(3)]],
    device T* residual_out [[buffer(4)]],
    constant float& eps [[buffer(5)]],
    constant uint& axis_size [[buffer(6)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint2 lid [[thread_position_in_threadgroup]],
    uint2 group_size [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials[SIMD_SIZE];
  const RowSlot slot = row_slot(group_pos, lid, group_size);
  const size_t offset = size_t(slot.row) * axis_size;
  rms_norm_row<T, true>(x + offset, residual + offset, weight, out + offset, residual_out + offset, eps, axis_size,
                        slot, simd_lane, simd_group, partials);
}

// Host names: rms_norm_<dtype> and add_rms_norm_<dtype>, the grammar the host code rebuilds from a tensor's dtype.
#define INSTANTIATE_RMS_NORM(name, T)                                                                       \
  template [[host_name("rms_norm_" #name)]] [[kernel]] decltype(rms_norm<T>) rms_norm<T>;                 \
  template [[host_name("add_rms_norm_" #name)]] [[kernel]] decltype(add_rms_norm<T>) add_rms_norm<T>;

INSTANTIATE_RMS_NORM(float32, float)
INSTANTIATE_RMS_NORM(float16, half)
INSTANTIATE_RMS_NORM(bfloat16, bfloat)
