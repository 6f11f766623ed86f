#include <metal_stdlib>
using namespace metal;

// RMSNorm of one row per threadgroup: y = x * rsqrt(mean(x^2) + eps) * w.
// Each thread reads 4 consecutive elements per step (one vector load where the row allows), accumulates in
// float, reduces within its SIMD group with simd_sum, then across SIMD groups through threadgroup memory.
constant constexpr uint N_READS = 4;

template <typename T>
kernel void row_rms(device const T* x [[buffer(0)]],
                    device const T* w [[buffer(1)]],
                    device T* y [[buffer(2)]],
                    constant float& eps [[buffer(3)]],
                    constant uint& n [[buffer(4)]],
                    uint row [[threadgroup_position_in_grid]],
                    uint tid [[thread_position_in_threadgroup]],
                    uint group [[threads_per_threadgroup]],
                    uint simd_lane [[thread_index_in_simdgroup]],
                    uint simd_id [[simdgroup_index_in_threadgroup]]) {
    threadgroup float partial[32];
    device const T* xr = x + size_t(row) * n;
    device T* yr = y + size_t(row) * n;

    float sum = 0.0f;
    for (uint i = tid * N_READS; i < n; i += group * N_READS) {
        if (i + N_READS <= n) {
            for (uint j = 0; j < N_READS; ++j) { float v = float(xr[i + j]); sum += v * v; }
        } else {
            for (uint j = i; j < n; ++j) { float v = float(xr[j]); sum += v * v; }
        }
    }
    sum = simd_sum(sum);
    if (simd_lane == 0) partial[simd_id] = sum;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (simd_id == 0) {
        float s = simd_lane < (group + 31) / 32 ? partial[simd_lane] : 0.0f;
        s = simd_sum(s);
        if (simd_lane == 0) partial[0] = s;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float scale = metal::precise::rsqrt(partial[0] / float(n) + eps);

    for (uint i = tid * N_READS; i < n; i += group * N_READS) {
        uint end = min(i + N_READS, n);
        for (uint j = i; j < end; ++j) yr[j] = T(float(xr[j]) * scale * float(w[j]));
    }
}

template [[host_name("row_rms_float32")]] kernel void row_rms<float>(
    device const float*, device const float*, device float*, constant float&, constant uint&,
    uint, uint, uint, uint, uint);
template [[host_name("row_rms_float16")]] kernel void row_rms<half>(
    device const half*, device const half*, device half*, constant float&, constant uint&,
    uint, uint, uint, uint, uint);
