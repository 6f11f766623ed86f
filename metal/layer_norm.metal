// LayerNorm over the last dimension, alone or fused with the residual add before it.
//
//   layer_norm:      out = (x - mean(x)) * rsqrt(var(x) + eps) [* weight] [+ bias]      (biased variance)
//   add_layer_norm:  h = T(x + residual) (rounded to T, as the unfused `h = x + residual` in T);
//                    residual_out = h;  out = layer_norm(h)
//
// Work split, as metal/rms_norm.metal: a row is cut into 16-byte chunks (metal/chunk_io.h: 4 floats or 8 halves /
// bfloats); the P threads of a row take chunk c = lid + s * P at step s (a SIMD group moves one contiguous
// 512-byte span per step) and keep their first N_CHUNKS chunks in registers, every load issued before the first
// reduction: rows up to P * N_CHUNKS chunks (16384 floats or 32768 halves at P = 1024) are read once. Whole
// aligned chunks move as single 16-byte loads and stores; the row's last partial chunk, or a row whose buffers
// are not 16-byte aligned (an odd column count, a storage offset), goes element by element with a guard on each.
//
// Threadgroups (metal/rows.h; sizes for Apple GPUs: SIMD width 32, at most 1024 threads): rows of at most
// 512 elements (32 threads x 16) take W lanes each (the fewest power of two at 16 elements a lane: 8 for 128),
// R rows per W x R threadgroup (up to 256 threads), and reduce with a butterfly over the row's lanes (no
// barrier); longer rows take one threadgroup of P threads (the row's elements / 16 in whole SIMD groups, at
// most 1024: 256 for a 4096-wide fp32 row), small enough that several rows stay resident per core and one row's
// loads overlap another's reductions.
//
// Threads per row (src/mpskernels/kernels/rms_norm.py, threads_per_row): the row's elements / 16 in whole SIMD
// groups, so every dtype holds 16 elements per thread (4 fp32 chunks, 2 16-bit chunks: 64 or 32 bytes in flight)
// and a 16-bit row has as many threads, and the same fp32 arithmetic per thread, as an fp32 row; only rows past
// 1024 * 16 elements hold up to N_CHUNKS = 4 chunks per thread (32768 halves) before looping. From MANY_ROWS rows
// on a 16-bit row past 512 elements holds 32 elements per thread, half the threads (kernels/rms_norm.py,
// MANY_ROWS: 4096 x 4096 bf16 on the H100 lane 38.6 -> 30.8 us); below FEW_ROWS rows (decode) a row past 512
// elements holds 8, twice the threads (FEW_ROWS: 8 x 4096 1.07-1.14x on the H100 lane). Before (H200 lane,
// % of copy bandwidth for the minimum bytes; 16-bit rows then had 4 chunks = 32 elements per thread and half the
// threads): layer_norm 4096 x 4096 bf16 25%, fp16 49%, fp32 80%; add_layer_norm
//   35/35/86%. Now (H100 lane, full run at f11f7ae, docs/anchor-lane.md): layer_norm 70/69/80%, add_layer_norm
//   74/83/93%: below the 85% target in 16-bit and fp32 layer_norm (issue 13).
// Held chunks (metal/rows.h): a thread keeps its N_CHUNKS chunks as the 16 bytes it loaded (a uint4, 4 registers
// for 4 floats or 8 halves / bfloats) and converts a chunk to fp32 where the statistics or the store use it,
// instead of float[4 * 8] for a 16-bit row (32 registers); values and numerics are unchanged. The final store loop
// is `#pragma unroll`ed so that v[s] stays a register where the compiler would keep a long body rolled. NVIDIA lane
// footprint (benches/lane_registers.py, ptxas sm_90, 64 registers at the 1024-thread bound), before -> after:
//   layer_norm     bf16 stack 40 B + spill 104 B -> 104 + 104;  fp16 40 + 112 -> 0 / 0;  fp32 0 / 0 -> 0 / 0
//   add_layer_norm bf16 176 + 48              -> 48 + 44;    fp16 32 + 64  -> 0 / 0;  fp32 0 / 0 -> 0 / 0
// bf16 still spills (no local array left: register pressure at the 64-register cap, where the lane's software
// fp32 <-> bfloat conversion adds temporaries; a single call site for the rescue pass cleared layer_norm bf16 but
// spilled fp16, so the two-call form stays). Open: issue 13. Since both statistics passes take whole chunks without
// a guard per value (metal/rows.h, add_shifted): layer_norm bf16 72 + 68, fp16 8 + 4; add_layer_norm bf16 56 + 52
// (ptxas; not yet timed on the lane).
// Tried (H100 lane, 2026-12-07, side by side in one device call): the store as fma(d, inv_std, -mean * inv_std) and
// one fma for weight and bias (SASS, fp16 with weight and bias: FMUL 54 -> 15, FFMA 1162 -> 1202, one operation an
// element fewer): 0.99-1.02x over 27 norm cases, geomean 1.003 (4096 x 4096 fp16 29.0 -> 29.1 us). Not kept: the
// store's arithmetic is not what holds 16-bit layer_norm at 70% of copy where rms_norm reaches 84-85%.
// Statistics in fp32, stably (metal/rows.h, row_statistics): every value is shifted by
// the row's first value k (a constant row then normalises to exactly 0, NaN at eps = 0, as PyTorch);
//   1. sum of (v - k) -> mean of the shifted row (whole chunks unguarded, the row's last partial chunk guarded);
//   2. sum of (v - k - mean)^2 over the values held in registers (a second pass over registers, not memory)
//      -> variance.
// Half rows held entirely in registers sum (v - k) and (v - k)^2 in one pass and one reduction instead (rows.h,
// held_row_moments): E[d^2] - E[d]^2 with d = v - k loses log2(E[d^2] / variance) bits, at most 4 where it is
// accepted (a first value within ~3.9 standard deviations of the mean); past that, step 2 as above. Why: one
// threadgroup reduction (and barrier) per row instead of two, where layer_norm (two) trailed rms_norm (one) on
// the lane, 70 against 86% of copy in 16-bit. H200 lane, side by side in one session (not an Apple GPU), fp16:
// layer_norm 4096 x 4096 26.4 -> 24.6 us, 8 x 4096 3.9 -> 3.4; add_layer_norm 44.8 -> 42.7, 4.9 -> 4.4. fp32
// keeps both steps (its outputs would show the lost bits), bfloat too (mixed on the lane: rows.h,
// OneReductionMoments).
// Chunks past the register capacity (rows longer than that, or a dispatch with fewer threads than the row needs)
// are not held: in the first pass each thread keeps running count / mean / sum of squared deviations of them,
// merged a chunk at a time (Chan et al.), and in step 2 adds m2 + count * (chunk_mean - mean)^2 — still no
// cancellation. They are read a second time for the store.
// A row whose fp32 sums overflow although its values are finite (values spread over more than ~1e19: bf16 or
// fp32 near +-3.4e38) takes one more max reduction and recomputes the statistics on values scaled by a power of
// two; its chunks past the register capacity are then read once more (only such rows pay this extra pass). A row
// holding inf or NaN gives NaN throughout.
//
// Memory traffic per element (E = sizeof(T)), rows that fit in registers — the minimum for both ops:
//   layer_norm:     read x (E), write out (E)                                              = 2E   (minimum 2E)
//   add_layer_norm: read x, residual (2E), write out, residual_out (2E)                    = 4E   (minimum 4E)
// Chunks past the register capacity: one extra read (x, or residual_out for add_layer_norm) = 3E / 5E.
// weight and bias (E each per element of a row) are read once per row where they are used: cached across rows.
// `has_weight` and `has_bias` are function constants: absent ones bind no buffer and cost no branch.
#include <metal_stdlib>
using namespace metal;

#include "rows.h"

constant bool has_weight [[function_constant(0)]];
constant bool has_bias [[function_constant(1)]];

constant constexpr int N_CHUNKS = 4;  // 16-byte chunks a thread keeps in registers

// out = y [* weight] [+ bias] for chunk c; y holds (v - mean) * inv_std.
template <typename T>
inline void store_affine(device T* out, const device T* weight, const device T* bias, uint c, uint n, bool vec,
                         thread float* y) {
  constexpr int N = ChunkOf<T>::N;
  float w[N];
  float b[N];
  if (has_weight) {
    load_chunk(weight, c, n, vec, w);
  }
  if (has_bias) {
    load_chunk(bias, c, n, vec, b);
  }
  for (int i = 0; i < N; i++) {
    if (has_weight) {
      y[i] *= w[i];
    }
    if (has_bias) {
      y[i] += b[i];
    }
  }
  store_chunk(out, c, n, vec, y);
}

template <typename T, bool RESIDUAL>
inline void layer_norm_row(
    const device T* x,
    const device T* residual,
    const device T* weight,
    const device T* bias,
    device T* out,
    device T* residual_out,
    float eps,
    uint n,
    RowSlot slot,
    uint simd_lane,
    uint simd_group,
    threadgroup float* partials_a,
    threadgroup float* partials_b) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
  const uint P = slot.threads;
  bool vec = aligned16(x) && aligned16(out) && (!has_weight || aligned16(weight)) && (!has_bias || aligned16(bias));
  if (RESIDUAL) {
    vec = vec && aligned16(residual) && aligned16(residual_out);
  }

  // Held as loaded (metal/rows.h): 4 registers per chunk in every dtype.
  uint4 v[N_CHUNKS];
  load_row_chunks<T, N_CHUNKS, RESIDUAL>(x, residual, residual_out, slot.lid, P, n, vec, v);
  // The shift: the row's first value, as the kernel sees it (h = T(x + residual) for add_layer_norm).
  const float k = RESIDUAL ? float(T(float(x[0]) + float(residual[0]))) : float(x[0]);
  const RowStatistics st = row_statistics<T, N_CHUNKS, RESIDUAL>(v, k, x, residual, residual_out, n, vec, slot,
                                                                 eps, simd_lane, simd_group, partials_a,
                                                                 partials_b);

#pragma unroll  // v[s] must be a register: a loop left rolled would index v from memory
  for (int s = 0; s < N_CHUNKS; s++) {
    const uint c = slot.lid + s * P;
    if (c < chunks) {
      float y[N];
      unpack_chunk<T>(v[s], y);
      for (int i = 0; i < N; i++) {
        y[i] = (fma(y[i], st.scale, -st.shift) - st.mean) * st.inv_std;
      }
      store_affine(out, weight, bias, c, n, vec, y);
    }
  }
  for (uint c = slot.lid + N_CHUNKS * P; c < chunks; c += P) {
    float h[N];
    load_chunk(RESIDUAL ? residual_out : x, c, n, vec, h);  // this thread stored residual_out's chunk c
    for (int i = 0; i < N; i++) {
      h[i] = (fma(h[i], st.scale, -st.shift) - st.mean) * st.inv_std;
    }
    store_affine(out, weight, bias, c, n, vec, h);
  }
}

template <typename T>
[[kernel, max_total_threads_per_threadgroup(1024)]] void layer_norm(  // 1024: the host's MAX_GROUP
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    const device T* bias [[buffer(2), function_constant(has_bias)]],
    device T* out [[buffer(3)]],
    constant float& eps [[buffer(4)]],
    constant uint& axis_size [[buffer(5)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint2 lid [[thread_position_in_threadgroup]],
    uint2 group_size [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];
  const RowSlot slot = row_slot(group_pos, lid, group_size);
  const size_t offset = size_t(slot.row) * axis_size;
  layer_norm_row<T, false>(x + offset, x, weight, bias, out + offset, out, eps, axis_size, slot, simd_lane,
                           simd_group, partials_a, partials_b);
}

template <typename T>
[[kernel, max_total_threads_per_threadgroup(1024)]] void add_layer_norm(  // 1024: the host's MAX_GROUP
    const device T* x [[buffer(0)]],
    const device T* residual [[buffer(1)]],
    const device T* weight [[buffer(2), function_constant(has_weight)]],
    const device T* bias [[buffer(3), function_constant(has_bias)]],
    device T* out [[buffer(4)]],
    device T* residual_out [[buffer(5)]],
    constant float& eps [[buffer(6)]],
    constant uint& axis_size [[buffer(7)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint2 lid [[thread_position_in_threadgroup]],
    uint2 group_size [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials_a[SIMD_SIZE];
  threadgroup float partials_b[SIMD_SIZE];
  const RowSlot slot = row_slot(group_pos, lid, group_size);
  const size_t offset = size_t(slot.row) * axis_size;
  layer_norm_row<T, true>(x + offset, residual + offset, weight, bias, out + offset, residual_out + offset, eps,
                          axis_size, slot, simd_lane, simd_group, partials_a, partials_b);
}

// Host names: layer_norm_<dtype> and add_layer_norm_<dtype>.
#define INSTANTIATE_LAYER_NORM(name, T)                                                                       \
  template [[host_name("layer_norm_" #name)]] [[kernel]] decltype(layer_norm<T>) layer_norm<T>;             \
  template [[host_name("add_layer_norm_" #name)]] [[kernel]] decltype(add_layer_norm<T>) add_layer_norm<T>;

INSTANTIATE_LAYER_NORM(float32, float)
INSTANTIATE_LAYER_NORM(float16, half)
INSTANTIATE_LAYER_NORM(bfloat16, bfloat)
