// RMSNorm over the last dimension: out = x * rsqrt(mean(x^2) + eps) [* weight].
//
// One threadgroup per row. Each thread reads N_READS contiguous elements per step, so a row is covered in
// ceil(axis_size / (threads * N_READS)) steps. The sum of squares accumulates in fp32, reduces inside each SIMD
// group with simd_sum, then across SIMD groups through 32 floats of threadgroup memory.
// Memory traffic per element: x is read twice (sum of squares, then scaling; the second read of a row hits the
// cache for rows up to a few hundred KiB), weight once, out written once. The minimum is one read and one write.
// `has_weight` is a function constant, so the unweighted variant carries no branch and binds no weight buffer.
#include <metal_stdlib>
using namespace metal;

constant bool has_weight [[function_constant(0)]];

constant constexpr int SIMD_SIZE = 32;

template <typename T, int N_READS>
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
  threadgroup float partial_sums[SIMD_SIZE];

  x += size_t(row) * axis_size;
  out += size_t(row) * axis_size;
  const uint stride = threads * N_READS;

  float sum_sq = 0.0f;
  for (uint base = lid * N_READS; base < axis_size; base += stride) {
    for (int i = 0; i < N_READS; i++) {
      if (base + i < axis_size) {
        float v = float(x[base + i]);
        sum_sq += v * v;
      }
    }
  }

  // Row total: SIMD groups first, then their partial sums (SIMD group 0 reads them back).
  sum_sq = simd_sum(sum_sq);
  if (simd_lane == 0) {
    partial_sums[simd_group] = sum_sq;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (simd_group == 0) {
    uint num_simd_groups = (threads + SIMD_SIZE - 1) / SIMD_SIZE;
    float s = simd_lane < num_simd_groups ? partial_sums[simd_lane] : 0.0f;
    s = simd_sum(s);
    if (simd_lane == 0) {
      partial_sums[0] = metal::precise::rsqrt(s / float(axis_size) + eps);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const float inv_rms = partial_sums[0];

  for (uint base = lid * N_READS; base < axis_size; base += stride) {
    for (int i = 0; i < N_READS; i++) {
      uint k = base + i;
      if (k < axis_size) {
        float y = float(x[k]) * inv_rms;
        if (has_weight) {
          y *= float(weight[k]);
        }
        out[k] = T(y);
      }
    }
  }
}

// Host names: rms_norm_<dtype>, the grammar the host code rebuilds from a tensor's dtype.
#define INSTANTIATE_RMS_NORM(name, T) \
  template [[host_name("rms_norm_" #name)]] [[kernel]] decltype(rms_norm<T, 4>) rms_norm<T, 4>;

INSTANTIATE_RMS_NORM(float32, float)
INSTANTIATE_RMS_NORM(float16, half)
INSTANTIATE_RMS_NORM(bfloat16, bfloat)
