// RMSNorm over the last dimension, alone or fused with the residual add before it.
//
//   rms_norm:      out = x * rsqrt(mean(x^2) + eps) [* weight]
//   add_rms_norm:  h = T(x + residual) (rounded to T, as the unfused `h = x + residual` in T);
//                  residual_out = h;  out = h * rsqrt(mean(h^2) + eps) [* weight]
//
// One threadgroup per row. Each thread loads N_READS consecutive elements per step (a SIMD group reads one
// contiguous span), steps of threads * N_READS elements apart, and keeps the first N_STEPS steps in registers:
// rows up to threads * N_READS * N_STEPS elements (16384 at 1024 threads) are read from memory once. The sum of
// squares accumulates in fp32, reduces inside each SIMD group with simd_sum, then across SIMD groups through
// threadgroup memory (every SIMD group re-reduces the per-group partials itself, so one barrier suffices), and
// each thread scales and stores the values it holds, rounding once.
//
// Longer rows (or a dispatch with fewer threads than the row needs) are still correct: elements past the register
// capacity are accumulated in the same first pass and read again for the store.
//
// Memory traffic per element (E = sizeof(T)), rows that fit in registers — the minimum for both ops:
//   rms_norm:     read x (E), write out (E)                                              = 2E   (minimum 2E)
//   add_rms_norm: read x, residual (2E), write out, residual_out (2E)                    = 4E   (minimum 4E)
// Elements past the register capacity: one extra read (x, or residual_out for add_rms_norm) = 3E / 5E.
// weight (E per element of a row) is read once per row, where it is used: cached across rows.
// `has_weight` is a function constant, so the unweighted variant carries no branch and binds no weight buffer.
#include <metal_stdlib>
using namespace metal;

constant bool has_weight [[function_constant(0)]];

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

template <typename T, int READS, int STEPS, bool RESIDUAL>
inline void rms_norm_row(
    const device T* x,
    const device T* residual,
    const device T* weight,
    device T* out,
    device T* residual_out,
    float eps,
    uint axis_size,
    uint lid,
    uint threads,
    uint simd_lane,
    uint simd_group,
    threadgroup float* partials) {
  const uint step = threads * READS;
  const uint held = step * STEPS;  // elements of the row kept in registers

  float v[STEPS][READS];
  float sum_sq = 0.0f;
  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      v[s][i] = k < axis_size ? load_input<T, RESIDUAL>(x, residual, residual_out, k) : 0.0f;
      sum_sq += v[s][i] * v[s][i];
    }
  }
  // Past the register capacity: accumulate now, read again for the store.
  for (uint base = held + lid * READS; base < axis_size; base += step) {
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        const float h = load_input<T, RESIDUAL>(x, residual, residual_out, k);
        sum_sq += h * h;
      }
    }
  }

  const float total = threadgroup_sum(sum_sq, partials, threads, simd_lane, simd_group);
  const float inv_rms = metal::precise::rsqrt(total / float(axis_size) + eps);

  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        float y = v[s][i] * inv_rms;
        if (has_weight) {
          y *= float(weight[k]);
        }
        out[k] = T(y);
      }
    }
  }
  for (uint base = held + lid * READS; base < axis_size; base += step) {
    for (int i = 0; i < READS; i++) {
      const uint k = base + i;
      if (k < axis_size) {
        // The same thread stored residual_out[k] in the first pass.
        float y = (RESIDUAL ? float(residual_out[k]) : float(x[k])) * inv_rms;
        if (has_weight) {
          y *= float(weight[k]);
        }
        out[k] = T(y);
      }
    }
  }
}

template <typename T, int READS, int STEPS>
[[kernel]] void rms_norm(
    const device T* x [[buffer(0)]],
    const device T* weight [[buffer(1), function_constant(has_weight)]],
    device T* out [[buffer(2)]],
    constant float& eps [[buffer(3)]],
    constant uint& axis_size [[buffer(4)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials[SIMD_SIZE];
  const size_t offset = size_t(row) * axis_size;
  rms_norm_row<T, READS, STEPS, false>(x + offset, x, weight, out + offset, out, eps, axis_size, lid, threads,
                                       simd_lane, simd_group, partials);
}

template <typename T, int READS, int STEPS>
[[kernel]] void add_rms_norm(
    const device T* x [[buffer(0)]],
    const device T* residual [[buffer(1)]],
    const device T* weight [[buffer(2), function_constant(has_weight)]],
    device T* out [[buffer(3)]],
    device T* residual_out [[buffer(4)]],
    constant float& eps [[buffer(5)]],
    constant uint& axis_size [[buffer(6)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint simd_lane [[thread_index_in_simdgroup]],
    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partials[SIMD_SIZE];
  const size_t offset = size_t(row) * axis_size;
  rms_norm_row<T, READS, STEPS, true>(x + offset, residual + offset, weight, out + offset, residual_out + offset,
                                      eps, axis_size, lid, threads, simd_lane, simd_group, partials);
}

// Host names: rms_norm_<dtype> and add_rms_norm_<dtype>, the grammar the host code rebuilds from a tensor's dtype.
#define INSTANTIATE_RMS_NORM(name, T)                                                                 \
  template [[host_name("rms_norm_" #name)]] [[kernel]] decltype(rms_norm<T, N_READS, N_STEPS>)          \
      rms_norm<T, N_READS, N_STEPS>;                                                                    \
  template [[host_name("add_rms_norm_" #name)]] [[kernel]] decltype(add_rms_norm<T, N_READS, N_STEPS>)  \
      add_rms_norm<T, N_READS, N_STEPS>;

INSTANTIATE_RMS_NORM(float32, float)
INSTANTIATE_RMS_NORM(float16, half)
INSTANTIATE_RMS_NORM(bfloat16, bfloat)
