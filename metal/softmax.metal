// Softmax and log-softmax over the last dimension of x, with an optional scale and additive mask:
//   v = x * scale [+ mask]
//   softmax:     out = exp(v - max(v)) / sum(exp(v - max(v)))
//   log_softmax: out = (v - max(v)) - log(sum(exp(v - max(v))))
// All arithmetic is fp32 (rounded once on store); subtracting the row maximum keeps exp from overflowing.
//
// Three variants, picked by the host from the row length (src/mpskernels/kernels/softmax.py):
//   softmax_simd   rows <= SIMD_SIZE * N_READS (128): one SIMD group per row, several rows per threadgroup. Each
//                  lane keeps its N_READS elements in registers; the row's max and sum are simd_max / simd_sum, with
//                  no threadgroup memory and no barrier.
//   softmax_block  rows <= 1024 * N_READS (4096): one threadgroup per row, sized so every thread holds its N_READS
//                  elements in registers. Max and sum reduce inside SIMD groups, then across them through
//                  threadgroup memory (two barriers in all).
//   softmax_looped any length: one threadgroup per row. Pass 1 is an online softmax: each thread keeps a running
//                  max m and a sum s of exp(v - m), rescaling s by exp(m_old - m_new) when m grows; the threads'
//                  (m, s) pairs combine across the threadgroup. Pass 2 reads the row again and writes it.
// Memory traffic per output element, with b = bytes per element (4 for fp32, 2 for fp16/bf16). The minimum is
// 2b without a mask (read x, write out) and 3b with one (read x and mask, write out):
//   simd, block:  x and mask read once, out written once: 2b (3b with a mask), the minimum.
//   looped:       x and mask read twice (pass 1 and pass 2), out written once: 3b against 2b without a mask
//                 (fp32: 12 bytes against 8), 5b against 3b with one (fp32: 20 against 12). The second read of a
//                 row (a 5000-element fp32 row is 20 KiB) can hit the cache; that is not measured here.
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

constant bool has_mask [[function_constant(0)]];

constant constexpr int SIMD_SIZE = 32;

// v = x * scale + mask for element k of the row (mask is only dereferenced when has_mask).
template <typename T>
inline float logit(const device T* x, const device T* mask, uint k, float scale) {
  float v = float(x[k]) * scale;
  if (has_mask) {
    v += float(mask[k]);
  }
  return v;
}

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

// Shared by the one-pass variants once the row's max and sum are known: `e` holds exp(v - max) for softmax and
// v itself for log_softmax.
template <typename T, bool LOG, int N_READS>
inline void store_row(device T* out, thread float* e, uint base, uint axis_size, float row_max, float row_sum) {
  const float inv_sum = 1.0f / row_sum;
  const float log_sum = LOG ? metal::precise::log(row_sum) : 0.0f;
  for (int i = 0; i < N_READS; i++) {
    if (base + i < axis_size) {
      out[base + i] = T(LOG ? (e[i] - row_max) - log_sum : e[i] * inv_sum);
    }
  }
}

// Loads this thread's N_READS elements (out-of-row ones as -inf) and returns their maximum.
template <typename T, int N_READS>
inline float load_row(const device T* x, const device T* mask, uint base, uint axis_size, float scale,
                      thread float* v) {
  float m = -INFINITY;
  for (int i = 0; i < N_READS; i++) {
    v[i] = base + i < axis_size ? logit(x, mask, base + i, scale) : -INFINITY;
    m = max(m, v[i]);
  }
  return m;
}

// sum of exp(v - row_max) over this thread's in-row elements; for softmax, v becomes exp(v - row_max).
template <bool LOG, int N_READS>
inline float exp_sum(thread float* v, uint base, uint axis_size, float row_max) {
  float s = 0.0f;
  for (int i = 0; i < N_READS; i++) {
    if (base + i < axis_size) {
      float e = metal::precise::exp(v[i] - row_max);
      s += e;
      if (!LOG) {
        v[i] = e;
      }
    }
  }
  return s;
}

// One SIMD group per row (axis_size <= SIMD_SIZE * N_READS); the grid has rows * SIMD_SIZE threads.
template <typename T, bool LOG, int N_READS>
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
    uint gid [[thread_position_in_grid]],
    uint simd_lane [[thread_index_in_simdgroup]]) {
  const uint row = gid / SIMD_SIZE;
  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const device T* row_mask = x;  // stands in when there is no mask (never read then)
  if (has_mask) {
    row_mask = mask + mask_row(row, div0, mod0, stride0, div1, mod1, stride1) * axis_size;
  }
  const uint base = simd_lane * N_READS;

  float v[N_READS];
  const float row_max = simd_max(load_row<T, N_READS>(x, row_mask, base, axis_size, scale, v));
  const float row_sum = simd_sum(exp_sum<LOG, N_READS>(v, base, axis_size, row_max));
  store_row<T, LOG, N_READS>(out, v, base, axis_size, row_max, row_sum);
}

// One threadgroup per row, threads * N_READS >= axis_size: every element stays in a register between the read and
// the write.
template <typename T, bool LOG, int N_READS>
[[kernel]] void softmax_block(
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

  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const device T* row_mask = x;  // stands in when there is no mask (never read then)
  if (has_mask) {
    row_mask = mask + mask_row(row, div0, mod0, stride0, div1, mod1, stride1) * axis_size;
  }
  const uint base = lid * N_READS;

  float v[N_READS];
  const float local_max = load_row<T, N_READS>(x, row_mask, base, axis_size, scale, v);
  const float row_max = threadgroup_max(local_max, max_scratch, simd_lane, simd_group, n_simd);
  const float local_sum = exp_sum<LOG, N_READS>(v, base, axis_size, row_max);
  const float row_sum = threadgroup_sum(local_sum, sum_scratch, simd_lane, simd_group, n_simd);
  store_row<T, LOG, N_READS>(out, v, base, axis_size, row_max, row_sum);
}

// One threadgroup per row of any length: online max and sum, then a second pass that writes.
template <typename T, bool LOG, int N_READS>
[[kernel]] void softmax_looped(
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

  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const device T* row_mask = x;  // stands in when there is no mask (never read then)
  if (has_mask) {
    row_mask = mask + mask_row(row, div0, mod0, stride0, div1, mod1, stride1) * axis_size;
  }
  const uint step = threads * N_READS;

  // Pass 1: running (m, s) with s = sum of exp(v - m) over the elements seen. While everything seen is -inf the
  // pair stays (-inf, 0), which avoids exp(-inf - -inf) = NaN for rows that are only partly masked.
  float m = -INFINITY;
  float s = 0.0f;
  for (uint base = lid * N_READS; base < axis_size; base += step) {
    float v[N_READS];
    const float new_max = max(m, load_row<T, N_READS>(x, row_mask, base, axis_size, scale, v));
    if (new_max != -INFINITY) {
      s *= metal::precise::exp(m - new_max);
      m = new_max;
      s += exp_sum<true, N_READS>(v, base, axis_size, m);
    }
  }

  // Combine the threads' pairs: rescale every s to the row maximum, then sum. A thread that saw only -inf has
  // s = 0 and rescales to 0 (its exp(-inf - row_max) is NaN only when the whole row is -inf, which is NaN anyway).
  const float row_max = threadgroup_max(m, max_scratch, simd_lane, simd_group, n_simd);
  s *= metal::precise::exp(m - row_max);
  const float row_sum = threadgroup_sum(s, sum_scratch, simd_lane, simd_group, n_simd);

  // Pass 2: read the row again and write it.
  const float inv_sum = 1.0f / row_sum;
  const float log_sum = LOG ? metal::precise::log(row_sum) : 0.0f;
  for (uint base = lid * N_READS; base < axis_size; base += step) {
    for (int i = 0; i < N_READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        const float d = logit(x, row_mask, k, scale) - row_max;
        out[k] = T(LOG ? d - log_sum : metal::precise::exp(d) * inv_sum);
      }
    }
  }
}

// Host names: <op>_<variant>_<dtype>, e.g. log_softmax_block_float16. N_READS must match softmax.py.
#define SOFTMAX_N_READS 4

#define INSTANTIATE_SOFTMAX_VARIANT(op, LOG, variant, name, T)                                   \
  template [[host_name(#op "_" #variant "_" #name)]] [[kernel]]                                  \
  decltype(softmax_##variant<T, LOG, SOFTMAX_N_READS>) softmax_##variant<T, LOG, SOFTMAX_N_READS>;

#define INSTANTIATE_SOFTMAX(op, LOG, name, T)           \
  INSTANTIATE_SOFTMAX_VARIANT(op, LOG, simd, name, T)   \
  INSTANTIATE_SOFTMAX_VARIANT(op, LOG, block, name, T)  \
  INSTANTIATE_SOFTMAX_VARIANT(op, LOG, looped, name, T)

INSTANTIATE_SOFTMAX(softmax, false, float32, float)
INSTANTIATE_SOFTMAX(softmax, false, float16, half)
INSTANTIATE_SOFTMAX(softmax, false, bfloat16, bfloat)
INSTANTIATE_SOFTMAX(log_softmax, true, float32, float)
INSTANTIATE_SOFTMAX(log_softmax, true, float16, half)
INSTANTIATE_SOFTMAX(log_softmax, true, bfloat16, bfloat)
