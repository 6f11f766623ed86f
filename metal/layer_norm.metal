// LayerNorm over the last dimension, alone or fused with the residual add before it.
//
//   layer_norm:      out = (x - mean(x)) * rsqrt(var(x) + eps) [* weight] [+ bias]      (biased variance)
//   add_layer_norm:  h = T(x + residual) (rounded to T, as the unfused `h = x + residual` in T);
//                    residual_out = h;  out = layer_norm(h)
//
// One threadgroup per row. Each thread loads N_READS consecutive elements per step (a SIMD group reads one
// contiguous span), steps of threads * N_READS elements apart, and keeps the first N_STEPS steps in registers:
// rows up to threads * N_READS * N_STEPS elements (16384 at 1024 threads) are read from memory once.
//
// Statistics in fp32, stably, without E[x^2] - E[x]^2:
//   1. sum of the row (simd_sum, then across SIMD groups through threadgroup memory) -> mean;
//   2. sum of (v - mean)^2 over the values held in registers (an exact second pass over registers, not memory)
//      -> variance.
// Elements past the register capacity (rows longer than 16384, or a dispatch with fewer threads than the row
// needs) are not held: in the first pass each thread keeps running count / mean / sum of squared deviations of
// them, merged a chunk at a time (Chan et al.), and in step 2 adds m2 + count * (chunk_mean - mean)^2 — still no
// cancellation. They are read a second time for the store.
//
// Memory traffic per element (E = sizeof(T)), rows that fit in registers — the minimum for both ops:
//   layer_norm:     read x (E), write out (E)                                              = 2E   (minimum 2E)
//   add_layer_norm: read x, residual (2E), write out, residual_out (2E)                    = 4E   (minimum 4E)
// Elements past the register capacity: one extra read (x, or residual_out for add_layer_norm) = 3E / 5E.
// weight and bias (E each per element of a row) are read once per row where they are used: cached across rows.
// `has_weight` and `has_bias` are function constants: absent ones bind no buffer and cost no branch.
#include <metal_stdlib>
using namespace metal;

constant bool has_weight [[function_constant(0)]];
constant bool has_bias [[function_constant(1)]];

constant constexpr int SIMD_SIZE = 32;
constant constexpr int N_READS = 4;  // consecutive elements a thread loads per step
constant constexpr int N_STEPS = 4;  // steps a thread keeps in registers

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

// The value the norm sees at k: x[k], or the rounded residual sum (which is also stored as residual_out).
template <typename T, bool RESIDUAL>
inline float load_input(const device T* x, const device T* residual, device T* residual_out, uint k) {
  if (RESIDUAL) {
    const T h = T(float(x[k]) + float(residual[k]));
    residual_out[k] = h;
    return float(h);
  }
  return float(x[k]);
}

template <typename T>
inline void store_affine(device T* out, const device T* weight, const device T* bias, uint k, float y) {
  if (has_weight) {
    y *= float(weight[k]);
  }
  if (has_bias) {
    y += float(bias[k]);
  }
  out[k] = T(y);
}

template <typename T, int READS, int STEPS, bool RESIDUAL>
inline void layer_norm_row(
    const device T* x,
    const device T* residual,
    const device T* weight,
    const device T* bias,
    device T* out,
    device T* residual_out,
    float eps,
    uint axis_size,
    uint lid,
    uint threads,
    uint simd_lane,
    uint simd_group,
    threadgroup float* partial_sums,
    threadgroup float* partial_m2) {
  const uint step = threads * READS;
  const uint held = step * STEPS;  // elements of the row kept in registers

  float v[STEPS][READS];
  float sum = 0.0f;
  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      v[s][i] = k < axis_size ? load_input<T, RESIDUAL>(x, residual, residual_out, k) : 0.0f;
      sum += v[s][i];
    }
  }
  // Past the register capacity: running count, mean and m2 of this thread's elements, merged per chunk.
  float tail_count = 0.0f;
  float tail_mean = 0.0f;
  float tail_m2 = 0.0f;
  for (uint base = held + lid * READS; base < axis_size; base += step) {
    float c[READS];
    float c_sum = 0.0f;
    int n = 0;
    for (int i = 0; i < READS; i++) {
      c[i] = 0.0f;
      if (base + i < axis_size) {
        c[i] = load_input<T, RESIDUAL>(x, residual, residual_out, base + i);
        c_sum += c[i];
        n++;
      }
    }
    const float c_mean = c_sum / float(n);
    float c_m2 = 0.0f;
    for (int i = 0; i < READS; i++) {
      if (i < n) {
        const float d = c[i] - c_mean;
        c_m2 += d * d;
      }
    }
    const float merged = tail_count + float(n);
    const float delta = c_mean - tail_mean;
    tail_mean += delta * (float(n) / merged);
    tail_m2 += c_m2 + delta * delta * (tail_count * float(n) / merged);
    tail_count = merged;
    sum += c_sum;
  }

  const float mean = threadgroup_sum(sum, partial_sums, threads, simd_lane, simd_group) / float(axis_size);

  float m2 = 0.0f;
  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      if (base + i < axis_size) {
        const float d = v[s][i] - mean;
        m2 += d * d;
      }
    }
  }
  if (tail_count > 0.0f) {
    const float d = tail_mean - mean;
    m2 += tail_m2 + tail_count * d * d;
  }
  const float var = threadgroup_sum(m2, partial_m2, threads, simd_lane, simd_group) / float(axis_size);
  const float inv_std = metal::precise::rsqrt(var + eps);

  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        store_affine(out, weight, bias, k, (v[s][i] - mean) * inv_std);
      }
    }
  }
  for (uint base = held + lid * READS; base < axis_size; base += step) {
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        // The same thread stored residual_out[k] in the first pass.
        const float h = RESIDUAL ? float(residual_out[k]) : float(x[k]);
        store_affine(out, weight, bias, k, (h - mean) * inv_std);
      }
    }
  }
}

template <typename T, int READS, int STEPS>
[[kernel]] void layer_norm(
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    const device T* bias [[buffer(2), function_constant(has_bias)]],
    device T* out [[buffer(3)]],
    constant float& eps [[buffer(4)]],
    constant uint& axis_size [[buffer(5)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partial_sums[SIMD_SIZE];
  threadgroup float partial_m2[SIMD_SIZE];
  const size_t offset = size_t(row) * axis_size;
  layer_norm_row<T, READS, STEPS, false>(x + offset, x, weight, bias, out + offset, out, eps, axis_size, lid,
                                         threads, simd_lane, simd_group, partial_sums, partial_m2);
}

template <typename T, int READS, int STEPS>
[[kernel]] void add_layer_norm(
    const device T* x [[buffer(0)]],
    const device T* residual [[buffer(1)]],
    const device T* weight [[buffer(2), function_constant(has_weight)]],
    const device T* bias [[buffer(3), function_constant(has_bias)]],
    device T* out [[buffer(4)]],
    device T* residual_out [[buffer(5)]],
    constant float& eps [[buffer(6)]],
    constant uint& axis_size [[buffer(7)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partial_sums[SIMD_SIZE];
  threadgroup float partial_m2[SIMD_SIZE];
  const size_t offset = size_t(row) * axis_size;
  layer_norm_row<T, READS, STEPS, true>(x + offset, residual + offset, weight, bias, out + offset,
                                        residual_out + offset, eps, axis_size, lid, threads, simd_lane, simd_group,
                                        partial_sums, partial_m2);
}

// Host names: layer_norm_<dtype> and add_layer_norm_<dtype>.
#define INSTANTIATE_LAYER_NORM(name, T)                                                                   \
  template [[host_name("layer_norm_" #name)]] [[kernel]] decltype(layer_norm<T, N_READS, N_STEPS>)          \
      layer_norm<T, N_READS, N_STEPS>;                                                                      \
  template [[host_name("add_layer_norm_" #name)]] [[kernel]] decltype(add_layer_norm<T, N_READS, N_STEPS>)  \
      add_layer_norm<T, N_READS, N_STEPS>;

INSTANTIATE_LAYER_NORM(float32, float)
INSTANTIATE_LAYER_NORM(float16, half)
INSTANTIATE_LAYER_NORM(bfloat16, bfloat)
