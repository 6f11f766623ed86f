// Weight-only quantised linear layers: out = x @ dequantise(w_q)^T [+ bias], the weights dequantised on the fly.
//
// Layout (src/mpskernels/quantize/packing.py): W (N x K) is stored as unsigned BITS-bit values q, 32 / BITS of
// them per 32-bit word, the first value of a word in its lowest bits; row n's value k is in word
// n * K * BITS / 32 + k * BITS / 32. Each group of `group_size` consecutive values along K has a scale and a bias
// (T, N x K / group_size): W[n][k] = scale * q + bias. K is a multiple of group_size (32, 64 or 128), so of 32.
//
// Two kernels, one chosen by the host from the number of rows M of x (src/mpskernels/kernels/quantized.py):
//
// qmv (M <= 8, decode): memory-bound on the weights. A threadgroup of QMV_SIMD_GROUPS SIMD groups handles one
// row of x (as MLX's qmv does; rows 2..8 read the weights again, mostly from cache). Each set of QMV_ROWS
// consecutive output columns (weight rows) belongs to one SIMD group, or, with the function constant `split_k`
// (the host's choice), to all QMV_SIMD_GROUPS of the threadgroup, which take its K steps in turn and add their
// sums through threadgroup memory in a fixed order.
// Why split: a grid of N / QMV_ROWS SIMD groups is small at N = 4096 (1024 SIMD groups, a few per core of a large
// GPU, each with 4-8 serial steps), and two SIMD groups per row set double the loads in flight with the same bytes
// read. Where N is large the grid is full already and the split only adds the exchange, so the host splits only
// up to QMV_SPLIT_MAX_N rows. NVIDIA lane (H100), against the kernel without any split: W 4096 x 11008 8-bit
// 31.7-41.1 -> 24.5-30.5 us, 4096 x 4096 8-bit up to 1.28x, 4-bit 1.01-1.05x; splitting at 11008 x 4096 too
// measured 4-bit up to 1.11x but 8-bit 0.83-0.89x, though with x summed once per row (see the early return in
// qmv; docs/quantize.md).
// Loads in flight: a step loads every row's packed words, scale and bias before it uses any (the lane's SASS had
// issued rows 1-3's scale and bias after the previous row's dot product). Side by side on the lane (H100,
// 2026-12-07, M = 1, LLaMA-7B/70B shapes; NVIDIA times, not Apple's): 1.01-1.20x in every dtype and width but one
// point (bf16 4-bit 4096 x 11008 0.99x), 28672 x 8192 4-bit 1.17-1.20x (bf16 71.4 -> 60.5 us, fp32 82.7 -> 69.2).
// Tried and dropped in the same session: software pipelining, the next step's words loaded before this step's
// are used (ptxas 4-bit 16-bit 88 -> 115 registers): 0.70-1.00x at the three fp32 rows whose figures came back
// from the device (8-bit 11008 x 4096 22.0 -> 31.5 us, 28672 x 8192 4-bit 82.8 -> 88.6).
// Tried: one threadgroup for all M rows, the weights read once, with acc[8][QMV_ROWS] accumulators: NVRTC kept
// acc in a 128-byte stack frame (the unrolled body is too large), so a batched-decode kernel needs M as a
// compile-time constant (a function constant) to keep its accumulators in registers.
// K is split across the 32 lanes: at each step lane l takes VALUES = 32 * WORDS / BITS consecutive values of K, one
// vector of WORDS packed words per weight row (qmv_words: 4 words, one 16-byte uint4, so 32 values at 4 bits and 16 at
// 8, except fp32 at 4 bits: 2 words, 16 values), so a SIMD group reads 512 (or 256) contiguous bytes of each of its
// rows per step. Why 2 words for fp32 at 4 bits only: a lane then holds half the x values and packed words (4 bits on
// the NVIDIA lane, ptxas: bf16 88 -> 61 registers, fp32 64 with 8 bytes), where Nsight Compute found the 16-byte kernel
// latency-bound at the occupancy its registers allowed (docs/quantize.md). Side by side on the lane (H200, one session;
// NVIDIA times, not Apple's), 8 bytes against 16: fp32 4-bit 1.15-1.34x faster (28672 x 8192: 92.9 -> 76.6 us, MLX's
// affine_qmv 144.2), but fp32 8-bit 0.80-0.87x and bf16 0.76-0.95x (4-bit 0.89-0.95x, 8-bit 0.76-0.85x): there the
// wider load's bytes in flight per lane count for more than the registers it holds. VALUES divides 32 and so every
// group size: a lane's values share one scale and one bias, and sum(x * (s * q + b)) = s * sum(x * q) + b * sum(x), two
// fp32 multiply-adds per group instead of one per value; sum(x * q) reads the packed values without integer-to-float
// conversions (dot_packed). The lanes' partial sums are reduced with simd_sum at the end. K not a multiple of 32 *
// VALUES: the last step leaves the lanes past K idle (K is a multiple of 32, so a lane's VALUES are all in range or all
// out). N not a multiple of QMV_ROWS: rows past N are skipped (the test is uniform across the SIMD group); with split_k
// every SIMD group reaches the exchange's barrier.
//
// qmm (M > 8, prefill): a threadgroup of 4 SIMD groups computes a QMM_BM x QMM_BN tile of out. Per K step of
// QMM_BK = 32 values it stages a tile of x and a dequantised tile of W in threadgroup memory (fp32), then each
// SIMD group multiplies a 16 x 16 sub-tile with 8x8 simdgroup_matrix operations (2 x 2 accumulators, fp32).
// M and N not multiples of 32: rows and columns past the edge are staged as zeros and not stored. K is a
// multiple of 32 = QMM_BK, so there is no K tail.
//
// Numerics: every product and sum in fp32; the output is rounded to T once. Each q is exact in fp32, each
// dequantised value s * q + b is rounded to fp32 once (the qmv form s * sum(x q) + b * sum(x) rounds differently
// but with fp32 accumulation either way).
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

constant bool has_bias [[function_constant(0)]];
// qmv: whether the QMV_SIMD_GROUPS SIMD groups of a threadgroup share one row set and take its K steps in turn (the
// host's choice). A function constant, so that without the split the kernel is the plain one (its loop stride a
// constant, no exchange); qmm ignores it.
constant bool split_k [[function_constant(1)]];

constant constexpr int SIMD = 32;
constant constexpr int QMV_SIMD_GROUPS = 2;  // SIMD groups of a qmv threadgroup
constant constexpr int QMV_ROWS = 4;         // output columns (weight rows) a qmv SIMD group owns
constant constexpr int QMM_BM = 32;          // rows of x per qmm threadgroup
constant constexpr int QMM_BN = 32;          // output columns per qmm threadgroup
constant constexpr int QMM_BK = 32;          // values of K per staged tile
constant constexpr int QMM_LD = QMM_BK + 4;  // row stride of the staged tiles (padding against bank conflicts)
constant constexpr int QMM_THREADS = 128;    // 4 SIMD groups, each a 16 x 16 sub-tile
static_assert(QMV_SIMD_GROUPS * SIMD == 64 && QMM_THREADS == 128,
              "keep the max_total_threads_per_threadgroup literals below in step");

// Unsigned value i of the packed words w (BITS bits each, 32 / BITS per word, lowest bits first).
template <int BITS>
inline float packed_value(const thread uint* w, int i) {
  constexpr int PER = 32 / BITS;
  return float((w[i / PER] >> ((i % PER) * BITS)) & ((1u << BITS) - 1u));
}

// sum(xv[i] * q_i) over the VALUES = WORDS * (32 / BITS) values of WORDS packed words, without converting an integer
// to float. A value at bits [p * BITS, p * BITS + BITS) of a word that lies below bit 23, masked and ORed into the
// bits of 1.0f, reads as the float 1 + q * 2^(p * BITS - 23), exactly; minus 1.0f (exact) it is q times a power
// of two. Slot p's products are summed apart and scaled back by 2^(23 - p * BITS) once (exact). The words' first
// DIRECT = 23 / BITS values are read in place, the rest after one right shift by (PER - DIRECT) * BITS, which
// puts them in slots PER - DIRECT .. DIRECT - 1.
// Why: integer-to-float conversion, shifts and bit extraction are quarter-rate instructions on Apple GPUs
// (published M1/M2 throughputs; as on NVIDIA's), masks, ORs and float adds full rate. Per 4-bit value this is a
// mask-and-OR and two float ops instead of a shift, a mask, a conversion and one float op: two quarter-rate
// instructions per value become one shift per word, an eighth of one.
// Numerics: every q and every scaling is exact; a product x * q * 2^(p * BITS - 23) underflows only where
// |x * q| < 2^-103 (about 1e-31), a contribution far below the sum's rounding unless all of x is that small.
template <int BITS, int WORDS>
inline float dot_packed(const thread float* xv, const thread uint* w) {
  constexpr int PER = 32 / BITS;
  constexpr int DIRECT = 23 / BITS;  // 5 slots at 4 bits, 2 at 8
  constexpr int SHIFT = (PER - DIRECT) * BITS;
  constexpr uint MASK = (1u << BITS) - 1u;
  constexpr uint ONE = 0x3f800000u;  // the bits of 1.0f
  static_assert(PER - DIRECT <= DIRECT, "the shifted values must land in the direct slots");
  float slot_sum[DIRECT];
  for (int p = 0; p < DIRECT; p++) {
    slot_sum[p] = 0.0f;
  }
  for (int j = 0; j < WORDS; j++) {
    const uint shifted = w[j] >> SHIFT;
    for (int i = 0; i < PER; i++) {
      const int slot = i < DIRECT ? i : i - (PER - DIRECT);
      const uint bits = ((i < DIRECT ? w[j] : shifted) & (MASK << (slot * BITS))) | ONE;
      slot_sum[slot] += xv[j * PER + i] * (as_type<float>(bits) - 1.0f);
    }
  }
  float dot = 0.0f;
  for (int p = 0; p < DIRECT; p++) {
    dot += slot_sum[p] * float(1u << (23 - p * BITS));
  }
  return dot;
}

// VALUES consecutive elements of x (16-byte aligned) as fp32, in 16-byte loads; returns their sum.
template <typename T, int VALUES>
inline float load_x(const device T* x, thread float* v) {
  constexpr int N = ChunkOf<T>::N;
  for (int c = 0; c < VALUES / N; c++) {
    load_vector(x + c * N, v + c * N);
  }
  float sum = 0.0f;
  for (int i = 0; i < VALUES; i++) {
    sum += v[i];
  }
  return sum;
}

// out[m][n] = y [+ bias[n]], rounded to T once.
template <typename T>
inline void store_qmv_output(device T* out, const device T* bias, uint m, uint N, uint n, float y) {
  if (has_bias) {
    y += float(bias[n]);
  }
  out[size_t(m) * N + n] = T(y);
}

// Packed words of a weight row a qmv lane reads per step: 2 (8 bytes) for fp32 activations at 4 bits, else 4 (one
// 16-byte uint4). See the header: the lane measured each choice both ways.
template <typename T, int BITS>
constexpr int qmv_words() {
  return sizeof(T) == 4 && BITS == 4 ? 2 : 4;
}

template <typename T, int BITS>
[[kernel, max_total_threads_per_threadgroup(64)]] void qmv(  // 64 = QMV_SIMD_GROUPS * SIMD
    const device T* x [[buffer(0)]],
    const device int* w_q [[buffer(1)]],
    const device T* scales [[buffer(2)]],
    const device T* biases [[buffer(3)]],
    const device T* bias [[buffer(4), function_constant(has_bias)]],
    device T* out [[buffer(5)]],
    constant uint& K [[buffer(6)]],
    constant uint& N [[buffer(7)]],
    constant uint& group_size [[buffer(8)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  constexpr int WORDS = qmv_words<T, BITS>();   // packed words of each row a lane reads per step
  constexpr int VALUES = WORDS * 32 / BITS;      // values of K per lane per step
  typedef vec<uint, WORDS> Words;
  threadgroup float partials[QMV_SIMD_GROUPS][QMV_ROWS];
  const uint k_split = split_k ? QMV_SIMD_GROUPS : 1;  // SIMD groups per row set
  const uint row_sets = QMV_SIMD_GROUPS / k_split;  // sets of QMV_ROWS rows per threadgroup
  const uint k_part = simd_group % k_split;         // this SIMD group's share of the K steps
  const uint row0 = (group_pos.x * row_sets + simd_group / k_split) * QMV_ROWS;
  if (row0 >= N) {
    // The whole row set: one SIMD group, or with split_k the whole threadgroup (so no barrier is left waiting).
    // Besides, the compiler then knows row 0 of the set is in range, so x's sum is computed once per step, not
    // inside each row's guard (NVIDIA lane: without this return the PTX summed x four times per step).
    return;
  }
  const uint m = group_pos.y;
  const uint words_per_row = K * BITS / 32;
  const uint groups_per_row = K / group_size;
  const device Words* w = reinterpret_cast<const device Words*>(reinterpret_cast<const device uint*>(w_q) +
                                                                  size_t(row0) * words_per_row);
  const uint vectors_per_row = words_per_row / WORDS;
  x += size_t(m) * K;

  float acc[QMV_ROWS] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (uint k = (k_part * SIMD + simd_lane) * VALUES; k < K; k += k_split * SIMD * VALUES) {
    float xv[VALUES];
    const float x_sum = load_x<T, VALUES>(x + k, xv);
    const uint g = k / group_size;
    const uint vector = k / VALUES;
    // All rows' words, scales and biases are loaded before any is used, so the loads are in flight together. (With
    // each row's scale and bias loaded under its own guard next to its use, the lane's SASS issued rows 1-3's after
    // the previous row's dot product: three more memory latencies in every step.)
    Words words[QMV_ROWS];
    float group_scale[QMV_ROWS], group_bias[QMV_ROWS];
    for (int r = 0; r < QMV_ROWS; r++) {
      if (row0 + r < N) {
        words[r] = w[size_t(r) * vectors_per_row + vector];
        const size_t gi = size_t(row0 + r) * groups_per_row + g;
        group_scale[r] = float(scales[gi]);
        group_bias[r] = float(biases[gi]);
      }
    }
    for (int r = 0; r < QMV_ROWS; r++) {
      if (row0 + r < N) {
        uint packed[WORDS];
        for (int i = 0; i < WORDS; i++) {
          packed[i] = words[r][i];
        }
        const float dot = dot_packed<BITS, WORDS>(xv, packed);
        acc[r] += group_scale[r] * dot + group_bias[r] * x_sum;
      }
    }
  }
  if (k_split == 1) {  // each SIMD group stores its own rows: no exchange
    for (int r = 0; r < QMV_ROWS; r++) {
      const float total = simd_sum(acc[r]);
      if (simd_lane == 0 && row0 + r < N) {
        store_qmv_output(out, bias, m, N, row0 + r, total);
      }
    }
    return;
  }
  for (int r = 0; r < QMV_ROWS; r++) {
    const float total = simd_sum(acc[r]);
    if (simd_lane == 0) {
      partials[simd_group][r] = total;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint r = simd_lane;
  if (k_part == 0 && r < uint(QMV_ROWS) && row0 + r < N) {
    float y = 0.0f;
    for (uint s = 0; s < k_split; s++) {
      y += partials[simd_group + s][r];  // in SIMD-group order: a fixed summation order
    }
    store_qmv_output(out, bias, m, N, row0 + r, y);
  }
}

// This lane's element coordinates in an 8x8 simdgroup matrix (Apple's layout: it holds (row, col), (row, col+1)).
inline int lane_row(uint lane) { return int((lane / 16) * 4 + (lane / 2) % 4); }
inline int lane_col(uint lane) { return int(((lane / 8) % 2) * 4 + (lane % 2) * 2); }

// Stages rows m0.. of x, values k0..k0+31, as fp32 (zeros past M): each thread one 8-value span.
template <typename T>
inline void stage_x(threadgroup float* xs, const device T* x, uint m0, uint k0, uint M, uint K, uint tid) {
  const uint row = tid / 4;
  const uint col = (tid % 4) * 8;
  float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  if (m0 + row < M) {
    load_x<T, 8>(x + size_t(m0 + row) * K + k0 + col, v);
  }
  for (int i = 0; i < 8; i++) {
    xs[row * QMM_LD + col + i] = v[i];
  }
}

// Stages weight rows n0.. (values k0..k0+31) dequantised to fp32 (zeros past N): each thread 8 values, which
// share one group (8 divides the group size), from BITS / 4 packed words.
template <typename T, int BITS>
inline void stage_w(threadgroup float* ws, const device uint* w, const device T* scales, const device T* biases,
                    uint n0, uint k0, uint N, uint K, uint group_size, uint tid) {
  constexpr int WORDS = BITS / 4;  // words holding 8 values
  const uint row = tid / 4;
  const uint col = (tid % 4) * 8;
  float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const uint n = n0 + row;
  if (n < N) {
    const uint k = k0 + col;
    const device uint* p = w + size_t(n) * (K * BITS / 32) + k * BITS / 32;
    uint words[2] = {0u, 0u};
    for (int i = 0; i < WORDS; i++) {
      words[i] = p[i];
    }
    const size_t gi = size_t(n) * (K / group_size) + k / group_size;
    const float s = float(scales[gi]);
    const float b = float(biases[gi]);
    for (int i = 0; i < 8; i++) {
      v[i] = s * packed_value<BITS>(words, i) + b;
    }
  }
  for (int i = 0; i < 8; i++) {
    ws[row * QMM_LD + col + i] = v[i];
  }
}

template <typename T, int BITS>
[[kernel, max_total_threads_per_threadgroup(128)]] void qmm(  // 128 = QMM_THREADS
    const device T* x [[buffer(0)]],
    const device int* w_q [[buffer(1)]],
    const device T* scales [[buffer(2)]],
    const device T* biases [[buffer(3)]],
    const device T* bias [[buffer(4), function_constant(has_bias)]],
    device T* out [[buffer(5)]],
    constant uint& K [[buffer(6)]],
    constant uint& N [[buffer(7)]],
    constant uint& group_size [[buffer(8)]],
    constant uint& M [[buffer(9)]],
    uint2 group_pos [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[QMM_BM * QMM_LD];
  threadgroup float ws[QMM_BN * QMM_LD];
  const uint n0 = group_pos.x * QMM_BN;
  const uint m0 = group_pos.y * QMM_BM;
  const uint sm = (simd_group / 2) * 16;  // this SIMD group's 16 x 16 sub-tile
  const uint sn = (simd_group % 2) * 16;
  const device uint* w = reinterpret_cast<const device uint*>(w_q);

  simdgroup_matrix<float, 8, 8> acc[2][2];
  for (int i = 0; i < 2; i++) {
    for (int j = 0; j < 2; j++) {
      acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    }
  }
  for (uint k0 = 0; k0 < K; k0 += QMM_BK) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every SIMD group is done with the previous tiles
    stage_x<T>(xs, x, m0, k0, M, K, tid);
    stage_w<T, BITS>(ws, w, scales, biases, n0, k0, N, K, group_size, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int kk = 0; kk < QMM_BK; kk += 8) {
      simdgroup_matrix<float, 8, 8> a[2];
      simdgroup_matrix<float, 8, 8> b[2];
      for (int i = 0; i < 2; i++) {
        simdgroup_load(a[i], xs + (sm + 8 * i) * QMM_LD + kk, QMM_LD);
      }
      for (int j = 0; j < 2; j++) {
        // Transposed: b[j](k, n) = W[n][k], the 8 weight rows of columns sn + 8j.. as a K x N block.
        simdgroup_load(b[j], ws + (sn + 8 * j) * QMM_LD + kk, QMM_LD, ulong2(0, 0), true);
      }
      for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
          simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
        }
      }
    }
  }

  const int r = lane_row(simd_lane);
  const int c = lane_col(simd_lane);
  for (int i = 0; i < 2; i++) {
    const uint m = m0 + sm + 8 * i + r;
    if (m >= M) {
      continue;
    }
    for (int j = 0; j < 2; j++) {
      for (int e = 0; e < 2; e++) {
        const uint n = n0 + sn + 8 * j + c + e;
        if (n < N) {
          float y = acc[i][j].thread_elements()[e];
          if (has_bias) {
            y += float(bias[n]);
          }
          out[size_t(m) * N + n] = T(y);
        }
      }
    }
  }
}

// Host names: quantized_qmv_<bits>bit_<dtype>, quantized_qmm_<bits>bit_<dtype>.
#define INSTANTIATE_QUANTIZED(name, T, BITS)                                                                \
  template [[host_name("quantized_qmv_" #BITS "bit_" #name)]] [[kernel]] decltype(qmv<T, BITS>) qmv<T, BITS>; \
  template [[host_name("quantized_qmm_" #BITS "bit_" #name)]] [[kernel]] decltype(qmm<T, BITS>) qmm<T, BITS>;

INSTANTIATE_QUANTIZED(float32, float, 4)
INSTANTIATE_QUANTIZED(float16, half, 4)
INSTANTIATE_QUANTIZED(bfloat16, bfloat, 4)
INSTANTIATE_QUANTIZED(float32, float, 8)
INSTANTIATE_QUANTIZED(float16, half, 8)
INSTANTIATE_QUANTIZED(bfloat16, bfloat, 8)
