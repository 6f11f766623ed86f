// Conformance: the metal:: math library (plain, precise:: and fast:: forms) for float, half and float4.
#include <metal_stdlib>
using namespace metal;

constant constexpr int NF = 36;

// x: any sign, p: positive, y: nonzero divisor. NF results per thread.
kernel void math_float(const device float* xs [[buffer(0)]], const device float* ps [[buffer(1)]],
                       const device float* ys [[buffer(2)]], device float* out [[buffer(3)]],
                       uint gid [[thread_position_in_grid]]) {
  float x = xs[gid], p = ps[gid], y = ys[gid];
  device float* o = out + gid * NF;
  o[0] = exp(x);
  o[1] = exp2(x);
  o[2] = log(p);
  o[3] = log2(p);
  o[4] = rsqrt(p);
  o[5] = sqrt(p);
  o[6] = tanh(x);
  o[7] = pow(p, x);
  o[8] = fmod(x, y);
  o[9] = fract(x);
  o[10] = clamp(x, -1.0f, 2.0f);
  o[11] = mix(x, y, 0.25f);
  o[12] = select(x, y, x > 0.0f);
  o[13] = fma(x, y, p);
  o[14] = precise::exp(x);
  o[15] = precise::rsqrt(p);
  o[16] = fast::exp(x);
  o[17] = fast::tanh(x);
  o[18] = sin(x);
  o[19] = cos(x);
  o[20] = floor(x);
  o[21] = ceil(x);
  o[22] = round(x);
  o[23] = trunc(x);
  o[24] = rint(x);
  o[25] = sign(x);
  o[26] = step(0.5f, x);
  o[27] = abs(x);
  o[28] = atan2(x, y);
  o[29] = log10(p);
  o[30] = fast::log(p);
  o[31] = copysign(p, x);
  o[32] = smoothstep(-1.0f, 1.0f, x);
  o[33] = max(x, y);
  o[34] = min(x, y);
  o[35] = fmax(x, numeric_limits<float>::quiet_NaN());
}

constant constexpr int NH = 13;

kernel void math_half(const device half* xs [[buffer(0)]], const device half* ps [[buffer(1)]],
                      const device half* ys [[buffer(2)]], device half* out [[buffer(3)]],
                      uint gid [[thread_position_in_grid]]) {
  half x = xs[gid], p = ps[gid], y = ys[gid];
  device half* o = out + gid * NH;
  o[0] = exp(x);
  o[1] = log(p);
  o[2] = rsqrt(p);
  o[3] = tanh(x);
  o[4] = pow(p, half(0.5h) * x);
  o[5] = fmod(x, y);
  o[6] = fract(x);
  o[7] = clamp(x, half(-1.0h), half(2.0h));
  o[8] = mix(x, y, half(0.25h));
  o[9] = select(x, y, x > half(0.0h));
  o[10] = fma(x, y, p);
  o[11] = sqrt(p);
  o[12] = precise::exp(x);
}

// Vector forms work component-wise; geometric functions reduce.
kernel void math_float4(const device float4* a [[buffer(0)]], const device float4* b [[buffer(1)]],
                        device float4* out [[buffer(2)]], device float* scalars [[buffer(3)]],
                        uint gid [[thread_position_in_grid]]) {
  float4 x = a[gid], y = b[gid];
  device float4* o = out + gid * 6;
  o[0] = exp(x);
  o[1] = clamp(x, float4(-1.0f), float4(0.5f, 1.0f, 1.5f, 2.0f));
  o[2] = mix(x, y, float4(0.0f, 0.25f, 0.5f, 1.0f));
  o[3] = select(x, y, x > y);
  o[4] = fma(x, y, float4(1.0f));
  o[5] = normalize(x);
  scalars[2 * gid] = dot(x, y);
  scalars[2 * gid + 1] = length(x);
}
