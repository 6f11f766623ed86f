// Conformance: memory layout of vectors and structs shared with the host (float3 is 16 bytes, packed_float3 is 12),
// metal::array, and column-major matrices.
#include <metal_stdlib>
using namespace metal;

struct WithFloat3 {
  float3 a;
  float b;
};

struct WithPacked {
  packed_float3 a;
  float b;
};

struct Params {
  float3 offset;  // bytes 0..11 (12..15 padding)
  float scale;    // byte 16
  uint count;     // byte 20
};

// Writes structs element by element; the host reads them back from raw bytes.
kernel void write_structs(device WithFloat3* s3 [[buffer(0)]], device WithPacked* sp [[buffer(1)]],
                          device uint* sizes [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  float g = float(gid);
  s3[gid].a = float3(g, g + 0.5f, -g);
  s3[gid].b = 1000.0f + g;
  sp[gid].a = packed_float3(g, g + 0.25f, -g);
  sp[gid].b = 2000.0f + g;
  if (gid == 0) {
    sizes[0] = sizeof(WithFloat3);
    sizes[1] = sizeof(WithPacked);
    sizes[2] = sizeof(float3);
    sizes[3] = sizeof(packed_float3);
    sizes[4] = alignof(float3);
    sizes[5] = sizeof(half3);
    sizes[6] = sizeof(float2);
    sizes[7] = sizeof(Params);
    sizes[8] = sizeof(float3x3);
    sizes[9] = sizeof(packed_half3);
  }
}

// Reads a float3 array (16-byte stride), a packed_float3 array (12-byte stride) and a struct argument.
kernel void read_vectors(const device float3* v3 [[buffer(0)]], const device packed_float3* p3 [[buffer(1)]],
                         constant Params& params [[buffer(2)]], device float* out [[buffer(3)]],
                         uint gid [[thread_position_in_grid]]) {
  if (gid >= params.count) return;
  float3 a = v3[gid] + params.offset;
  float3 b = float3(p3[gid]) * params.scale;
  out[2 * gid] = a.x + 10.0f * a.y + 100.0f * a.z;
  out[2 * gid + 1] = b.x + 10.0f * b.y + 100.0f * b.z;
}

struct Coeffs {
  array<float, 4> c;
};

// metal::array: a polynomial from a struct member, a local array filled in a loop, size() and range-for.
kernel void array_poly(const device float* x [[buffer(0)]], constant Coeffs& coeffs [[buffer(1)]],
                       device float* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  float acc = 0.0f;
  for (int i = int(coeffs.c.size()) - 1; i >= 0; --i) acc = acc * v + coeffs.c[i];
  array<float, 3> powers;
  for (uint i = 0; i < powers.size(); ++i) powers[i] = i == 0 ? v : powers[i - 1] * v;
  float s = 0.0f;
  for (float p : powers) s += p;
  out[2 * gid] = acc;
  out[2 * gid + 1] = s;
}

// Matrices: m * v, v * m, transpose, element access m[col][row], matrix product and a 2x3 (2 columns, 3 rows) matrix.
kernel void matrix_ops(constant float4x4& m [[buffer(0)]], const device float4* v [[buffer(1)]],
                       const device float* m23 [[buffer(2)]], device float* out [[buffer(3)]],
                       uint gid [[thread_position_in_grid]]) {
  device float* o = out + gid * 20;
  float4 x = v[gid];
  float4 mv = m * x;
  float4 vm = x * m;
  float4x4 t = transpose(m);
  float4 tv = t * x;
  for (int i = 0; i < 4; ++i) {
    o[i] = mv[i];
    o[4 + i] = vm[i];
    o[8 + i] = tv[i];
  }
  o[12] = m[1][2];  // column 1, row 2
  float4x4 mm = m * m;
  o[13] = mm[3][0];
  float2x3 a = float2x3(float3(m23[0], m23[1], m23[2]), float3(m23[3], m23[4], m23[5]));
  float3 av = a * float2(x.x, x.y);
  o[14] = av.x;
  o[15] = av.y;
  o[16] = av.z;
  float3x3 d(2.0f);
  o[17] = determinant(d);
  o[18] = m[3].w;
  o[19] = (m * 2.0f)[0][0];
}
