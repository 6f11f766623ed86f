// GroupNorm over NCHW-style inputs (N, C, *spatial), C split into `groups` groups of C/G consecutive channels:
//
//   out[n, c, s] = (x[n, c, s] - mean_{n,g}) * rsqrt(var_{n,g} + eps) [* weight[c]] [+ bias[c]]   (biased variance)
//
// where (n, g) runs over the C/G * HW elements of group g of sample n. In a contiguous (N, C, *) tensor these are
// one contiguous span of group_elems = C/G * HW elements starting at (n * G + g) * group_elems, so the kernel is a
// row norm over that span: one threadgroup per (n, group), the channel of element k of the span being
// g * C/G + k / HW (tracked incrementally per chunk: one division per N_READS elements, only with an affine).
//
// Each thread loads N_READS consecutive elements per step, steps of threads * N_READS elements apart, and keeps
// the first N_STEPS steps in registers (16384 elements at 1024 threads). Statistics in fp32, stably: sum -> mean,
// then sum of (v - mean)^2 over the register-held values; elements past the register capacity keep a running
// per-thread count / mean / m2 merged a chunk at a time (Chan et al.) and contribute m2 + count * (mean_t - mean)^2.
// Both reductions: simd_sum, then across SIMD groups through threadgroup memory.
//
// Passes over memory and bytes per element (E = sizeof(T)):
//   group_elems <= threads * N_READS * N_STEPS (16384 at 1024 threads): x read once, out written once = 2E,
//     the minimum.
//   longer groups (typical of image models: C/G * HW = 10 * 64 * 64 = 40960 for C = 320, G = 32): the elements
//     past the first 16384 are read twice (statistics pass, then the normalising pass) = 3E for those elements;
//     a 40960-element group moves 2E * 16384 + 3E * 24576 bytes, 2.6E per element on average against 2E.
// weight and bias: one value per channel (C/G per group), loaded per element where used: served from cache.
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

// Stores y[0..READS) at span positions base.. (those below size), applying the channel's affine.
template <typename T, int READS>
inline void store_chunk(device T* out, const device T* weight, const device T* bias, uint base, uint size,
                        uint first_channel, uint spatial, thread const float* y) {
  uint channel = 0;
  uint offset = 0;  // position of base + i inside its channel's spatial plane
  if (has_weight || has_bias) {
    channel = first_channel + base / spatial;
    offset = base % spatial;
  }
  for (int i = 0; i < READS; i++) {
    if (base + i < size) {
      float value = y[i];
      if (has_weight) {
        value *= float(weight[channel]);
      }
      if (has_bias) {
        value += float(bias[channel]);
      }
      out[base + i] = T(value);
    }
    if (has_weight || has_bias) {
      if (++offset == spatial) {
        offset = 0;
        channel++;
      }
    }
  }
}

template <typename T, int READS, int STEPS>
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
  threadgroup float partial_sums[SIMD_SIZE];
  threadgroup float partial_m2[SIMD_SIZE];

  const size_t span = size_t(group_index) * group_elems;
  x += span;
  out += span;
  const uint size = group_elems;
  const uint first_channel = (group_index % groups) * (group_elems / spatial);
  const uint step = threads * READS;
  const uint held = step * STEPS;  // elements of the span kept in registers

  float v[STEPS][READS];
  float sum = 0.0f;
  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      v[s][i] = base + i < size ? float(x[base + i]) : 0.0f;
      sum += v[s][i];
    }
  }
  // Past the register capacity: running count, mean and m2 of this thread's elements, merged per chunk.
  float tail_count = 0.0f;
  float tail_mean = 0.0f;
  float tail_m2 = 0.0f;
  for (uint base = held + lid * READS; base < size; base += step) {
    float c[READS];
    float c_sum = 0.0f;
    int n = 0;
    for (int i = 0; i < READS; i++) {
      c[i] = 0.0f;
      if (base + i < size) {
        c[i] = float(x[base + i]);
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

  const float mean = threadgroup_sum(sum, partial_sums, threads, simd_lane, simd_group) / float(size);

  float m2 = 0.0f;
  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    for (int i = 0; i < READS; i++) {
      if (base + i < size) {
        const float d = v[s][i] - mean;
        m2 += d * d;
      }
    }
  }
  if (tail_count > 0.0f) {
    const float d = tail_mean - mean;
    m2 += tail_m2 + tail_count * d * d;
  }
  const float var = threadgroup_sum(m2, partial_m2, threads, simd_lane, simd_group) / float(size);
  const float inv_std = metal::precise::rsqrt(var + eps);

  for (int s = 0; s < STEPS; s++) {
    const uint base = s * step + lid * READS;
    if (base < size) {
      float y[READS];
      for (int i = 0; i < READS; i++) {
        y[i] = (v[s][i] - mean) * inv_std;
      }
      store_chunk<T, READS>(out, weight, bias, base, size, first_channel, spatial, y);
    }
  }
  for (uint base = held + lid * READS; base < size; base += step) {
    float y[READS];
    for (int i = 0; i < READS; i++) {
      y[i] = base + i < size ? (float(x[base + i]) - mean) * inv_std : 0.0f;
    }
    store_chunk<T, READS>(out, weight, bias, base, size, first_channel, spatial, y);
  }
}

// Host names: group_norm_<dtype>.
#define INSTANTIATE_GROUP_NORM(name, T)                                                          \
  template [[host_name("group_norm_" #name)]] [[kernel]] decltype(group_norm<T, N_READS, N_STEPS>) \
      group_norm<T, N_READS, N_STEPS>;

INSTANTIATE_GROUP_NORM(float32, float)
INSTANTIATE_GROUP_NORM(float16, half)
INSTANTIATE_GROUP_NORM(bfloat16, bfloat)
