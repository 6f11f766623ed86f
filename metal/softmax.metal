// Softmax and log-softmax over the last dimension of x, with an optional scale, logit soft-capping and additive mask:
//   v = x * scale;  [v = softcap * tanh(v / softcap)];  [v += mask]
//   softmax:     out = exp(v - max(v)) / sum(exp(v - max(v)))
//   log_softmax: out = (v - max(v)) - log(sum(exp(v - max(v))))
// All arithmetic is fp32 (rounded once on store); subtracting the row maximum keeps exp from overflowing.
//
// Rows move in 16-byte chunks (metal/chunk_io.h: 4 floats or 8 halves / bfloats): consecutive threads take
// consecutive chunks, so a SIMD group moves one contiguous 512-byte span per access, and a whole chunk of a row
// whose buffers (x, out, the mask row) are 16-byte aligned is one 16-byte load or store. Only the row's last partial
// chunk, or an unaligned row (an odd row length, a storage offset), goes element by element with a guard on each.
//
// Four variants, picked by the host from the row length (src/mpskernels/kernels/softmax.py). Each thread holds
// ROW_CHUNKS = 4 chunks (64 bytes; 8 in the wide variant), all loaded before the first reduction waits on any
// (threadgroup sizes for Apple GPUs: SIMD width 32, at most 1024 threads, 32 KiB threadgroup memory of which 256
// bytes are used):
//   softmax_simd   rows of at most 32 * 4 chunks (512 floats, 1024 halves): `row_lanes` lanes per row, the fewest
//                  power of two holding the row at 4 chunks a lane, so 32 / row_lanes rows share a SIMD group and
//                  every lane loads; 256-thread threadgroups. Max and sum are butterflies of simd_shuffle_xor over
//                  the row's lanes: no threadgroup memory, no barrier. Before (H200 lane, % of copy bandwidth for
//                  the minimum bytes), with one chunk per lane and 32 lanes per row: 262144 x 128 bf16 28%, fp16
//                  32% (16 of 32 lanes loaded), fp32 89%; now 4 lanes x 4 chunks per 128-half row (8 rows per
//                  SIMD group), 8 lanes per 128-float row.
//   softmax_block  rows of at most 1024 * 4 chunks (16384 floats, 32768 halves): one threadgroup per row of
//                  chunks / 4 threads in whole SIMD groups. Max and sum reduce inside SIMD groups, then across them
//                  through threadgroup memory (two barriers in all). Before, one chunk (16 bytes) per thread:
//                  32x2048x2048 bf16 54%, fp16 61%, fp32 71%; 2048 x 32000 (then looped) 43/51/60%. Now a
//                  2048-wide row is 128 (fp32) or 64 (16-bit) threads of 64 bytes in flight each, and a 32000-wide
//                  16-bit row (4000 chunks) is read once instead of twice.
//   softmax_wide   rows of at most 1024 * 8 chunks (32768 floats, 65536 halves): softmax_block with 8 chunks per
//                  thread (128 bytes in flight, 32 fp32 registers of data for fp32, 64 for 16-bit types), so a
//                  32000-wide fp32 vocabulary row (before: looped, 2048 x 32000 fp32 60%) is read once, not twice.
//                  Unmasked 16-bit rows take it from 2048 chunks (16384 halves) on: a 32000-wide row is 512 threads of
//                  8 chunks instead of 1000 of 4, two rows per core where one fitted (the host's reasons and lane
//                  figures: WIDE_16BIT_FROM_CHUNKS in src/mpskernels/kernels/softmax.py).
//   softmax_looped any length: one threadgroup of 1024 threads per row. Pass 1 is an online softmax over steps of
//                  4 chunks per thread: each thread keeps a running max m and a sum s of exp(v - m), rescaling s
//                  by exp(m_old - m_new) when m grows; the threads' (m, s) pairs combine across the threadgroup.
//                  Pass 2 reads the row again and writes it.
// Measured (H100 lane, full run at 91853cf; % of copy, bf16/fp16/fp32): softmax 32x2048x2048
// 76/77/96%, 2048 x 32000 64/61/69%, 262144 x 128 70/70/82%; log_softmax 85/83/83%, 78/77/65%, 66/67/74%; since then
// rows of exactly row_lanes x 4 whole aligned chunks (powers of two from 16 floats or 32 halves: 262144 x 128 and the
// masked 512-wide rows among them) take full_simd_row, 94.5-99.5% of copy in both ops and every dtype (an A/B in one
// device call, figures at full_simd_row). Unmasked 16-bit rows of 32000 take softmax_wide (512 threads,
// WIDE_16BIT_FROM_CHUNKS; 50% of copy as one 1000-thread threadgroup in the run at c5f06f2); an fp32 row of 32000 is
// still one 1000-thread threadgroup of 8 chunks at the lane's 64-register bound: one row per core in flight, its read,
// reductions and write in turn (issue 13).
// The full run at f11f7ae (docs/anchor-lane.md), same order: softmax 75/75/95%, 62/59/68%, 94/94/84%, masked
// 91/97/99%; log_softmax 81/81/83%, 76/76/64%, 93/94/84%, masked 97/97/99% (fp32 262144 x 128 at 84% there against
// 92-97% in the A/B: run-to-run spread on the same code).
// Memory traffic per output element, with b = bytes per element (4 for fp32, 2 for fp16/bf16). The minimum is
// 2b without a mask (read x, write out) and 3b with one (read x and mask, write out):
//   simd, block:  x and mask read once, out written once: 2b (3b with a mask), the minimum.
//   looped:       x and mask read twice (pass 1 and pass 2), out written once: 3b against 2b without a mask
//                 (fp32: 12 bytes against 8), 5b against 3b with one (fp32: 20 against 12). The second read of a
//                 row (a 20000-element fp32 row is 80 KiB) can hit the cache; that is not measured here.
//   A broadcast mask is read once per output row it serves (counted above as if it were not broadcast).
//
// Mask broadcasting. The host makes the mask contiguous and describes which mask row serves output row r as
//   mask_row(r) = (r / div0 % mod0) * stride0 + (r / div1 % mod1) * stride1
// (two groups of x's leading dimensions that the mask does not broadcast over; an unused group has stride 0). The
// mask's last dimension always equals x's. `has_mask` is a function constant: without a mask, no mask buffer is
// bound, the kernels carry no mask code, and the `mask` argument is only named inside `if (has_mask)`.
//
// Non-finite values follow PyTorch: a row whose values are all -inf (a fully masked row) gives NaN (-inf - -inf); a
// row containing +inf or NaN gives NaN throughout. Partially masked rows give exactly 0 (softmax) or -inf
// (log_softmax) at the masked places.
#include <metal_stdlib>
using namespace metal;

#include "chunk_bits.h"
#include "chunk_io.h"

constant bool has_mask [[function_constant(0)]];
// Gemma-2's attention-logit soft-capping, applied before the mask as its eager attention does. The cap is a
// constant (a model has one) so that without it the kernels carry no tanh and take no extra argument.
constant bool has_softcap [[function_constant(1)]];
constant float softcap [[function_constant(2)]];

constant constexpr int SIMD_SIZE = 32;

inline size_t mask_row(uint row, uint div0, uint mod0, uint stride0, uint div1, uint mod1, uint stride1) {
  return size_t(row / div0 % mod0) * stride0 + size_t(row / div1 % mod1) * stride1;
}

// Row maximum and sum over the whole threadgroup: SIMD groups first, then their partials, which every SIMD group
// reads back and reduces itself (so each result costs one barrier). Each scratch array serves one reduction only.
inline float threadgroup_max(float v, threadgroup float* scratch, uint simd_lane, uint simd_group, uint n_simd) {
  v = simd_max(v);
  if (simd_lane == 0) {
    scratch[simd_group] = v;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = simd_lane < n_simd ? scratch[simd_lane] : -INFINITY;
  return simd_max(v);
}

inline float threadgroup_sum(float v, threadgroup float* scratch, uint simd_lane, uint simd_group, uint n_simd) {
  v = simd_sum(v);
  if (simd_lane == 0) {
    scratch[simd_group] = v;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = simd_lane < n_simd ? scratch[simd_lane] : 0.0f;
  return simd_sum(v);
}

// A chunk's logits from its values v: v * scale [capped] [+ mv, the mask's values]; elements past the row's end
// become -inf. Returns their maximum.
inline float chunk_logits(thread float* v, thread const float* mv, int count, uint first, uint n, float scale) {
  float m = -INFINITY;
  for (int i = 0; i < count; i++) {
    v[i] *= scale;
    if (has_softcap) {
      v[i] = softcap * metal::precise::tanh(v[i] / softcap);
    }
    if (has_mask) {
      v[i] += mv[i];
    }
    if (first + i >= n) {
      v[i] = -INFINITY;
    }
    m = max(m, v[i]);
  }
  return m;
}

// Chunk c of the row's logits (metal/chunk_io.h: 16 bytes of T, one vector access where `vec` and the chunk is
// whole); elements past the row's end read as -inf. Returns their maximum.
template <typename T>
inline float load_logits(const device T* x, const device T* mask, uint c, uint n, float scale, bool vec,
                         thread float* v) {
  constexpr int N = ChunkOf<T>::N;
  load_chunk(x, c, n, vec, v);
  float mv[N];
  if (has_mask) {
    load_chunk(mask, c, n, vec, mv);
  }
  return chunk_logits(v, mv, N, c * N, n, scale);
}

// sum of exp(v - row_max) over the chunk's in-row elements; for softmax, v becomes exp(v - row_max).
template <typename T, bool LOG>
inline float exp_sum(thread float* v, uint c, uint n, float row_max) {
  float s = 0.0f;
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    if (c * ChunkOf<T>::N + i < n) {
      const float e = metal::precise::exp(v[i] - row_max);
      s += e;
      if (!LOG) {
        v[i] = e;
      }
    }
  }
  return s;
}

// Writes chunk c once the row's max and sum are known: `e` holds exp(v - max) for softmax and v for log_softmax.
template <typename T, bool LOG>
inline void probs_of(thread float* e, float row_max, float row_sum) {
  const float inv_sum = 1.0f / row_sum;
  const float log_sum = LOG ? metal::precise::log(row_sum) : 0.0f;
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    e[i] = LOG ? (e[i] - row_max) - log_sum : e[i] * inv_sum;
  }
}

template <typename T, bool LOG>
inline void store_probs(device T* out, thread float* e, uint c, uint n, bool vec, float row_max, float row_sum) {
  probs_of<T, LOG>(e, row_max, row_sum);
  store_chunk(out, c, n, vec, e);
}

// The row's mask (x stands in when there is no mask: never read then) and whether all its buffers are 16-byte
// aligned.
template <typename T>
inline const device T* row_mask_of(const device T* x, const device T* mask, uint row, uint axis_size, uint div0,
                                   uint mod0, uint stride0, uint div1, uint mod1, uint stride1) {
  if (has_mask) {
    return mask + mask_row(row, div0, mod0, stride0, div1, mod1, stride1) * axis_size;
  }
  return x;
}

// ---- K chunks per thread, all loaded before the first reduction ----
// A thread takes chunks first, first + stride, ... (K of them; stride = the row's threads, so a row's lanes move
// consecutive 16-byte chunks per step); chunks past the row hold -inf and are neither read nor written.

constant constexpr int ROW_CHUNKS = 4;  // chunks per thread in the simd and block variants (64 bytes in flight)

// Loads the thread's chunks; returns their maximum.
template <typename T, int K = ROW_CHUNKS>
inline float load_row(const device T* x, const device T* mask, uint first, uint stride, uint n, float scale,
                      bool vec, thread float* v) {
  const uint chunks = (n + ChunkOf<T>::N - 1) / ChunkOf<T>::N;
  float m = -INFINITY;
  for (int k = 0; k < K; k++) {
    const uint c = first + k * stride;
    if (c < chunks) {
      m = max(m, load_logits(x, mask, c, n, scale, vec, v + k * ChunkOf<T>::N));
    } else {
      for (int i = 0; i < ChunkOf<T>::N; i++) {
        v[k * ChunkOf<T>::N + i] = -INFINITY;
      }
    }
  }
  return m;
}

template <typename T, bool LOG, int K = ROW_CHUNKS>
inline float exp_sum_row(thread float* v, uint first, uint stride, uint n,
                         float row_max) {
  float s = 0.0f;
  for (int k = 0; k < K; k++) {
    s += exp_sum<T, LOG>(v + k * ChunkOf<T>::N, first + k * stride, n, row_max);  // 0 past the row
  }
  return s;
}

template <typename T, bool LOG, int K = ROW_CHUNKS>
inline void store_row(device T* out, thread float* v, uint first, uint stride, uint n,
                      bool vec, float row_max, float row_sum) {
  const uint chunks = (n + ChunkOf<T>::N - 1) / ChunkOf<T>::N;
  for (int k = 0; k < K; k++) {
    const uint c = first + k * stride;
    if (c < chunks) {
      store_probs<T, LOG>(out, v + k * ChunkOf<T>::N, c, n, vec, row_max, row_sum);
    }
  }
}

// Max and sum over the `lanes` lanes of a row inside a SIMD group (lanes a power of two dividing 32, the row's
// lanes aligned to it): a butterfly, so every lane of the row ends with the same value, no threadgroup memory.
inline float lanes_max(float v, uint lanes) {
  for (uint w = lanes / 2; w > 0; w /= 2) {
    v = max(v, simd_shuffle_xor(v, ushort(w)));
  }
  return v;
}

inline float lanes_sum(float v, uint lanes) {
  for (uint w = lanes / 2; w > 0; w /= 2) {
    v += simd_shuffle_xor(v, ushort(w));
  }
  return v;
}

// A row of exactly lanes * ROW_CHUNKS whole chunks whose buffers are 16-byte aligned (a power-of-two row of 4 to 128
// chunks: 16 to 512 floats, 32 to 1024 halves): every chunk a lane takes is whole and inside the row, so it moves as
// one vector access and no element is guarded. Same operations in the same order as the guarded path, so the same
// results.
// Why (H100 lane, Nsight Compute, 262144 x 128 fp32 on main at 7d58542): DRAM throughput 76% of peak, 0.6
// instructions issued per cycle and scheduler, 17.7 cycles between a warp's instructions (10.9 of them waiting on
// loads) and about 714 instructions per warp (45 per element): a warp's lifetime, not the bytes in flight, set the
// time. The guarded path spends a compare and a select per element on each of its two guards and a branch per
// chunk between the vector and the element-wise access; this path is about 330 instructions a thread (SASS,
// sm_90). Its cost (ptxas, CUDA 13.0, worst over the function-constant specialisations, benches/lane_registers.py
// --all; registers, then stack frame / spill stores): softmax_simd_float32 59 -> 60, log_softmax_simd_float32 63 -> 59,
// no frame either way; the 16-bit kernels stay at the 64-register bound, softmax_simd_bfloat16 0 / 0 -> 8 / 4 B,
// _float16 8 / 4 -> 8 / 12 B, log_softmax_simd_bfloat16 0 / 0 -> 112 / 160 B, _float16 8 / 0 -> 112 / 160 B. The lane
// measured those kernels 1.36x faster or more all the same (below); an Apple GPU's register file is not NVIDIA's, so the
// spills are lane figures only.
// Measured side by side in one device call (H100 lane, 2026-12-07, main at 58b434e against this path; NVIDIA
// times, not Apple's), softmax and log_softmax, bf16 / fp16 / fp32: 262144 x 128 1.09-1.43x (softmax bf16 64.2 ->
// 47.3 us, fp32 100.3 -> 92.0), the masked 8 x 32 x 512 x 512 rows 1.23-1.52x (softmax bf16 134.6 -> 91.6, fp32
// 223.1 -> 180.9; log_softmax fp16 2.72x against a slow 250.7 us on main); every one of the 12 rows now moves its
// minimum bytes at 94.5-99.5% of that run's copy bandwidth (64-89% before; 36% for that fp16 row).
// Tried for the block and wide variants too (ptxas only): rows of whole chunks in general (any length a multiple
// of the chunk, one guard per chunk) took softmax_block_float32 from 40 to 60 registers and gave
// softmax_wide_float32 a 112-byte stack frame; exact full rows only (threads x K chunks) 40 -> 54, an 8-byte frame
// in the 16-bit block kernels (at 64) and a 72-byte one in softmax_wide_float32; the one block row that would gain
// (32 x 2048 x 2048, fp32 at 96% of copy on the lane) gains least, so the block variants keep the guarded path.
template <typename T, bool LOG>
inline void full_simd_row(const device T* x, const device T* mask, device T* out, uint lane, uint lanes, float scale) {
  constexpr int N = ChunkOf<T>::N;
  float v[ROW_CHUNKS * N];
  float m = -INFINITY;
  for (int k = 0; k < ROW_CHUNKS; k++) {
    const uint base = (lane + k * lanes) * N;
    load_vector(x + base, v + k * N);
    float mv[N];
    if (has_mask) {
      load_vector(mask + base, mv);
    }
    m = max(m, chunk_logits(v + k * N, mv, N, 0, N, scale));  // first 0, n N: no element past the end
  }
  const float row_max = lanes_max(m, lanes);
  float s = 0.0f;
  for (int k = 0; k < ROW_CHUNKS; k++) {
    s += exp_sum<T, LOG>(v + k * N, 0, N, row_max);  // chunk 0 of an N-element span: no element past the end
  }
  const float row_sum = lanes_sum(s, lanes);
  for (int k = 0; k < ROW_CHUNKS; k++) {
    probs_of<T, LOG>(v + k * N, row_max, row_sum);
    store_vector(out + (lane + k * lanes) * N, v + k * N);
  }
}

// Rows of at most 32 * ROW_CHUNKS chunks: `row_lanes` lanes per row (a power of two <= 32), 32 / row_lanes rows
// per SIMD group, each lane ROW_CHUNKS chunks. The grid has rows * row_lanes threads, so a row's lanes are
// consecutive threads of one SIMD group.
template <typename T, bool LOG>
[[kernel]] void softmax_simd(
    const device T* x [[buffer(0)]],
    const device T* mask [[buffer(1), function_constant(has_mask)]],
    device T* out [[buffer(2)]],
    constant float& scale [[buffer(3)]],
    constant uint& axis_size [[buffer(4)]],
    constant uint& div0 [[buffer(5)]],
    constant uint& mod0 [[buffer(6)]],
    constant uint& stride0 [[buffer(7)]],
    constant uint& div1 [[buffer(8)]],
    constant uint& mod1 [[buffer(9)]],
    constant uint& stride1 [[buffer(10)]],
    constant uint& row_lanes [[buffer(11)]],
    uint gid [[thread_position_in_grid]]) {
  const uint row = gid >> ctz(row_lanes);  // row_lanes is a power of two
  const uint lane = gid & (row_lanes - 1);
  const device T* row_mask = row_mask_of(x, mask, row, axis_size, div0, mod0, stride0, div1, mod1, stride1);
  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const bool vec = aligned16(x) && aligned16(out) && (!has_mask || aligned16(row_mask));

  if (vec && axis_size == row_lanes * (ROW_CHUNKS * ChunkOf<T>::N)) {
    full_simd_row<T, LOG>(x, row_mask, out, lane, row_lanes, scale);
    return;
  }
  float v[ROW_CHUNKS * ChunkOf<T>::N];
  const float row_max = lanes_max(load_row(x, row_mask, lane, row_lanes, axis_size, scale, vec, v), row_lanes);
  const float row_sum = lanes_sum(exp_sum_row<T, LOG>(v, lane, row_lanes, axis_size, row_max), row_lanes);
  store_row<T, LOG>(out, v, lane, row_lanes, axis_size, vec, row_max, row_sum);
}

// A 16-bit row without a mask, held as the bits it was loaded as (metal/chunk_bits.h: 8 values in 4 registers instead
// of 8 fp32 copies) and turned into logits (scale, cap) again at each of the three uses: max, sum, store. The values
// and the order of every operation are those of the fp32-held path, so are the results. Why: at 8 chunks a thread
// (softmax_wide, unmasked 16-bit rows of 16385-65536 elements: a 32000-word vocabulary) fp32 copies are 64 registers
// of data, and the NVIDIA lane's 1024-thread entry (64 registers) kept 256-400 B a thread in local memory
// (benches/lane_registers.py); held as bits, 32, and none. Taken by log_softmax at 4 and 8 chunks, and by softmax
// at 8 only: softmax then computes exp twice per element (sum, store) where the fp32 copies keep exp from the sum,
// and on the lane (H100, side by side) that cost more than it saved at 4 chunks (32 x 2048 x 2048 fp16 234 ->
// 287 us), while log_softmax, which needs no exp at the store, gained (2048 x 32000 bf16 192 -> 137 us, fp16
// 177 -> 138; 32 x 2048 x 2048 bf16 262 -> 219). With a mask the logits need the mask's values too, and holding
// both saves nothing, so masked rows keep fp32 copies.
template <typename T>
inline float logits_of_bits(uint4 bits, uint c, uint n, float scale, thread float* v) {
  unpack_chunk<T>(bits, v);
  return chunk_logits(v, v, ChunkOf<T>::N, c * ChunkOf<T>::N, n, scale);  // no mask on this path: mv unread
}

template <typename T, bool LOG, int K>
inline void block_row_held_bits(const device T* x, device T* out, uint lid, uint threads, uint n, float scale, bool vec,
                                threadgroup float* max_scratch, threadgroup float* sum_scratch, uint simd_lane,
                                uint simd_group, uint n_simd) {
  constexpr int N = ChunkOf<T>::N;
  const uint chunks = (n + N - 1) / N;
  uint4 bits[K];
#pragma unroll  // bits[k] must stay a register
  for (int k = 0; k < K; k++) {
    const uint c = lid + k * threads;
    bits[k] = c < chunks ? load_chunk_bits(x, c, n, vec) : uint4(0);
  }
  float local_max = -INFINITY;
#pragma unroll
  for (int k = 0; k < K; k++) {
    const uint c = lid + k * threads;
    if (c < chunks) {
      float v[N];
      local_max = max(local_max, logits_of_bits<T>(bits[k], c, n, scale, v));
    }
  }
  const float row_max = threadgroup_max(local_max, max_scratch, simd_lane, simd_group, n_simd);
  float local_sum = 0.0f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    const uint c = lid + k * threads;
    if (c < chunks) {
      float v[N];
      logits_of_bits<T>(bits[k], c, n, scale, v);
      local_sum += exp_sum<T, true>(v, c, n, row_max);
    }
  }
  const float row_sum = threadgroup_sum(local_sum, sum_scratch, simd_lane, simd_group, n_simd);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const uint c = lid + k * threads;
    if (c < chunks) {
      float v[N];
      logits_of_bits<T>(bits[k], c, n, scale, v);
      if (!LOG) {
        exp_sum<T, false>(v, c, n, row_max);  // v becomes exp(v - row_max), as the fp32-held path keeps it
      }
      store_probs<T, LOG>(out, v, c, n, vec, row_max, row_sum);
    }
  }
}

// One threadgroup per row, K chunks per thread (threads * K chunks >= the row; K = 4: block, 8: wide): every element
// stays in a register between the read and the write.
template <typename T, bool LOG, int K>
[[kernel, max_total_threads_per_threadgroup(1024)]] void softmax_block(  // 1024: the host's MAX_GROUP
    const device T* x [[buffer(0)]],
    const device T* mask [[buffer(1), function_constant(has_mask)]],
    device T* out [[buffer(2)]],
    constant float& scale [[buffer(3)]],
    constant uint& axis_size [[buffer(4)]],
    constant uint& div0 [[buffer(5)]],
    constant uint& mod0 [[buffer(6)]],
    constant uint& stride0 [[buffer(7)]],
    constant uint& div1 [[buffer(8)]],
    constant uint& mod1 [[buffer(9)]],
    constant uint& stride1 [[buffer(10)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float max_scratch[SIMD_SIZE];
  threadgroup float sum_scratch[SIMD_SIZE];
  const uint n_simd = (threads + SIMD_SIZE - 1) / SIMD_SIZE;

  const device T* row_mask = row_mask_of(x, mask, row, axis_size, div0, mod0, stride0, div1, mod1, stride1);
  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const bool vec = aligned16(x) && aligned16(out) && (!has_mask || aligned16(row_mask));

  if (sizeof(T) == 2 && !has_mask && (LOG || K > ROW_CHUNKS)) {
    block_row_held_bits<T, LOG, K>(x, out, lid, threads, axis_size, scale, vec, max_scratch, sum_scratch, simd_lane,
                                   simd_group, n_simd);
    return;
  }
  float v[K * ChunkOf<T>::N];
  const float local_max = load_row<T, K>(x, row_mask, lid, threads, axis_size, scale, vec, v);
  const float row_max = threadgroup_max(local_max, max_scratch, simd_lane, simd_group, n_simd);
  const float local_sum = exp_sum_row<T, LOG, K>(v, lid, threads, axis_size, row_max);
  const float row_sum = threadgroup_sum(local_sum, sum_scratch, simd_lane, simd_group, n_simd);
  store_row<T, LOG, K>(out, v, lid, threads, axis_size, vec, row_max, row_sum);
}

// One threadgroup per row of any length: online max and sum, then a second pass that writes. Thread lid takes
// chunks lid, lid + threads, ... (a SIMD group moves one contiguous span per step).
template <typename T, bool LOG>
[[kernel, max_total_threads_per_threadgroup(1024)]] void softmax_looped(  // 1024: the host's LOOPED_GROUP
    const device T* x [[buffer(0)]],
    const device T* mask [[buffer(1), function_constant(has_mask)]],
    device T* out [[buffer(2)]],
    constant float& scale [[buffer(3)]],
    constant uint& axis_size [[buffer(4)]],
    constant uint& div0 [[buffer(5)]],
    constant uint& mod0 [[buffer(6)]],
    constant uint& stride0 [[buffer(7)]],
    constant uint& div1 [[buffer(8)]],
    constant uint& mod1 [[buffer(9)]],
    constant uint& stride1 [[buffer(10)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float max_scratch[SIMD_SIZE];
  threadgroup float sum_scratch[SIMD_SIZE];
  const uint n_simd = (threads + SIMD_SIZE - 1) / SIMD_SIZE;

  const device T* row_mask = row_mask_of(x, mask, row, axis_size, div0, mod0, stride0, div1, mod1, stride1);
  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const bool vec = aligned16(x) && aligned16(out) && (!has_mask || aligned16(row_mask));
  const uint chunks = (axis_size + ChunkOf<T>::N - 1) / ChunkOf<T>::N;

  // Pass 1: running (m, s) with s = sum of exp(v - m) over the elements seen, ROW_CHUNKS chunks per step (all
  // loaded before they are used: 64 bytes in flight per thread). While everything seen is -inf the pair stays
  // (-inf, 0), which avoids exp(-inf - -inf) = NaN for rows that are only partly masked.
  const uint step = threads * ROW_CHUNKS;
  float m = -INFINITY;
  float s = 0.0f;
  for (uint c0 = 0; c0 < chunks; c0 += step) {
    float v[ROW_CHUNKS * ChunkOf<T>::N];
    const float new_max = max(m, load_row(x, row_mask, c0 + lid, threads, axis_size, scale, vec, v));
    if (new_max != -INFINITY) {
      s *= metal::precise::exp(m - new_max);
      m = new_max;
      s += exp_sum_row<T, true>(v, c0 + lid, threads, axis_size, m);
    }
  }

  // Combine the threads' pairs: rescale every s to the row maximum, then sum. A thread that saw only -inf has
  // s = 0 and rescales to 0 (its exp(-inf - row_max) is NaN only when the whole row is -inf, which is NaN anyway).
  const float row_max = threadgroup_max(m, max_scratch, simd_lane, simd_group, n_simd);
  s *= metal::precise::exp(m - row_max);
  const float row_sum = threadgroup_sum(s, sum_scratch, simd_lane, simd_group, n_simd);

  // Pass 2: read the row again and write it, ROW_CHUNKS chunks per step.
  for (uint c0 = 0; c0 < chunks; c0 += step) {
    float v[ROW_CHUNKS * ChunkOf<T>::N];
    load_row(x, row_mask, c0 + lid, threads, axis_size, scale, vec, v);
    if (!LOG) {
      for (int i = 0; i < ROW_CHUNKS * ChunkOf<T>::N; i++) {
        v[i] = metal::precise::exp(v[i] - row_max);
      }
    }
    store_row<T, LOG>(out, v, c0 + lid, threads, axis_size, vec, row_max, row_sum);
  }
}

// Host names: <op>_<variant>_<dtype>, e.g. log_softmax_block_float16.
#define INSTANTIATE_SOFTMAX_VARIANT(op, LOG, variant, name, T)  \
  template [[host_name(#op "_" #variant "_" #name)]] [[kernel]] \
  decltype(softmax_##variant<T, LOG>) softmax_##variant<T, LOG>;

#define INSTANTIATE_SOFTMAX_BLOCK(op, LOG, variant, K, name, T)                                 \
  template [[host_name(#op "_" #variant "_" #name)]] [[kernel]] decltype(softmax_block<T, LOG, K>) \
      softmax_block<T, LOG, K>;

#define INSTANTIATE_SOFTMAX(op, LOG, name, T)                  \
  INSTANTIATE_SOFTMAX_VARIANT(op, LOG, simd, name, T)          \
  INSTANTIATE_SOFTMAX_BLOCK(op, LOG, block, ROW_CHUNKS, name, T) \
  INSTANTIATE_SOFTMAX_BLOCK(op, LOG, wide, 2 * ROW_CHUNKS, name, T) \
  INSTANTIATE_SOFTMAX_VARIANT(op, LOG, looped, name, T)

INSTANTIATE_SOFTMAX(softmax, false, float32, float)
INSTANTIATE_SOFTMAX(softmax, false, float16, half)
INSTANTIATE_SOFTMAX(softmax, false, bfloat16, bfloat)
INSTANTIATE_SOFTMAX(log_softmax, true, float32, float)
INSTANTIATE_SOFTMAX(log_softmax, true, float16, half)
INSTANTIATE_SOFTMAX(log_softmax, true, bfloat16, bfloat)
