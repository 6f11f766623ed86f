// Conformance: half and bfloat conversions (round to nearest even, overflow, subnormals) and half/bfloat
// arithmetic that rounds after every operation.
#include <metal_stdlib>
using namespace metal;

kernel void float_to_half(const device float* x [[buffer(0)]], device half* out [[buffer(1)]],
                          uint gid [[thread_position_in_grid]]) {
  out[gid] = half(x[gid]);
}

kernel void float_to_bfloat(const device float* x [[buffer(0)]], device bfloat* out [[buffer(1)]],
                            uint gid [[thread_position_in_grid]]) {
  out[gid] = bfloat(x[gid]);
}

// Every half bit pattern widened to float (exact).
kernel void half_bits_to_float(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = float(as_type<half>(ushort(gid)));
}

kernel void bfloat_to_float(const device bfloat* x [[buffer(0)]], device float* out [[buffer(1)]],
                            uint gid [[thread_position_in_grid]]) {
  out[gid] = float(x[gid]);
}

// half op half is half: each operation rounds. 5 results per thread.
kernel void half_arith(const device half* a [[buffer(0)]], const device half* b [[buffer(1)]],
                       const device half* c [[buffer(2)]], device half* out [[buffer(3)]],
                       uint gid [[thread_position_in_grid]]) {
  half x = a[gid], y = b[gid], z = c[gid];
  device half* o = out + gid * 5;
  o[0] = x * y + z;  // two roundings
  o[1] = x / y;
  o[2] = (x - y) * (x + y);
  o[3] = fma(x, y, z);  // one rounding
  half t = x;
  t += y;
  t *= z;
  o[4] = t;
}

// Sequential accumulation in half: 1 + 1 + ... stalls at 2048 (2049 is not a half).
kernel void half_accumulate(const device half* x [[buffer(0)]], device half* out [[buffer(1)]],
                            constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  half s = 0;
  for (uint i = 0; i < n; ++i) {
    s += x[i];
  }
  out[gid] = s;
}

// half mixed with float promotes to float: the product is not rounded to half.
kernel void half_times_float(const device half* a [[buffer(0)]], const device float* b [[buffer(1)]],
                             device float* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = a[gid] * b[gid];
}

kernel void bfloat_arith(const device bfloat* a [[buffer(0)]], const device bfloat* b [[buffer(1)]],
                         device bfloat* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  bfloat x = a[gid], y = b[gid];
  out[3 * gid] = x * y;
  out[3 * gid + 1] = x + y;
  out[3 * gid + 2] = x * y + y;
}

// Half literals, numeric_limits and the half vector type.
kernel void half_misc(device half* out [[buffer(0)]], device float* fout [[buffer(1)]]) {
  out[0] = numeric_limits<half>::max();
  out[1] = numeric_limits<half>::min();
  out[2] = numeric_limits<half>::epsilon();
  out[3] = numeric_limits<half>::infinity();
  out[4] = 0.1h;
  half4 v = half4(1.0h, 2.0h, 3.0h, 4.0h) * half4(0.1h);
  for (int i = 0; i < 4; ++i) out[5 + i] = v[i];
  fout[0] = float(numeric_limits<bfloat>::max());
  fout[1] = float(bfloat(1.0f) + bfloat(0.001f));
}
