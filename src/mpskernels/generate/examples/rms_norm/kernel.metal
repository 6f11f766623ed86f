#include <metal_stdlib>
using namespace metal;

// One threadgroup per row; SIMD-group partial sums, then one SIMD group reduces them.
template <typename T>
kernel void row_rms(device const T* x [[buffer(0)]], device const T* w [[buffer(1)]], device T* y [[buffer(2)]],
                    constant float& eps [[buffer(3)]], constant uint& n [[buffer(4)]],
                    uint row [[threadgroup_position_in_grid]], uint lane [[thread_position_in_threadgroup]],
                    uint group [[threads_per_threadgroup]], uint simd_lane [[thread_index_in_simdgroup]],
                    uint simd_id [[simdgroup_index_in_threadgroup]]) {
    threadgroup float partial[32];
    device const T* xr = x + row * n;
    float sum = 0.0f;
    for (uint i = lane; i < n; i += group) { float v = float(xr[i]); sum += v * v; }
    sum = simd_sum(sum);
    if (simd_lane == 0) partial[simd_id] = sum;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (simd_id == 0) {
        float s = simd_lane < (group + 31) / 32 ? partial[simd_lane] : 0.0f;
        s = simd_sum(s);
        if (simd_lane == 0) partial[0] = s;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float scale = rsqrt(partial[0] / float(n) + eps);
    for (uint i = lane; i < n; i += group) y[row * n + i] = T(float(xr[i]) * scale * float(w[i]));
}

template [[host_name("row_rms_float32")]] kernel void row_rms<float>(device const float*, device const float*, device float*, constant float&, constant uint&, uint, uint, uint, uint, uint);
template [[host_name("row_rms_float16")]] kernel void row_rms<half>(device const half*, device const half*, device half*, constant float&, constant uint&, uint, uint, uint, uint, uint);
