// Conformance: integer functions (clz, ctz, popcount, mulhi, rotate, extract/insert_bits, reverse_bits,
// addsat/subsat, abs_diff, hadd) and as_type bit casts.
#include <metal_stdlib>
using namespace metal;

constant constexpr int NU = 14;

kernel void integer_uint(const device uint* as [[buffer(0)]], const device uint* bs [[buffer(1)]],
                         device uint* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  uint a = as[gid], b = bs[gid];
  uint s = b % 32;
  device uint* o = out + gid * NU;
  o[0] = clz(a);
  o[1] = ctz(a);
  o[2] = popcount(a);
  o[3] = mulhi(a, b);
  o[4] = rotate(a, s);
  o[5] = extract_bits(a, s, 32 - s);
  o[6] = extract_bits(a, s / 2, 5u);
  o[7] = insert_bits(a, b, 4u, 8u);
  o[8] = reverse_bits(a);
  o[9] = addsat(a, b);
  o[10] = subsat(a, b);
  o[11] = absdiff(a, b);
  o[12] = hadd(a, b);
  o[13] = rhadd(a, b);
}

constant constexpr int NI = 7;

kernel void integer_int(const device int* as [[buffer(0)]], const device int* bs [[buffer(1)]],
                        device int* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  int a = as[gid], b = bs[gid];
  device int* o = out + gid * NI;
  o[0] = mulhi(a, b);
  o[1] = addsat(a, b);
  o[2] = subsat(a, b);
  o[3] = extract_bits(a, 3u, 7u);  // sign-extended from bit 9
  o[4] = abs(a);
  o[5] = clz(a);
  o[6] = popcount(a);
}

// Narrow types count within their own width.
kernel void integer_narrow(const device ushort* hs [[buffer(0)]], const device uchar* cs [[buffer(1)]],
                           device uint* out [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  ushort h = hs[gid];
  uchar c = cs[gid];
  device uint* o = out + gid * 6;
  o[0] = clz(h);
  o[1] = ctz(h);
  o[2] = popcount(c);
  o[3] = clz(c);
  o[4] = reverse_bits(h);
  o[5] = addsat(c, uchar(200));
}

// as_type reinterprets bits between types of the same size.
kernel void bit_casts(const device float* f [[buffer(0)]], const device uint* u [[buffer(1)]],
                      device uint* out_u [[buffer(2)]], device float* out_f [[buffer(3)]],
                      device half2* out_h2 [[buffer(4)]], device ushort* out_s [[buffer(5)]],
                      device char4* out_c4 [[buffer(6)]], uint gid [[thread_position_in_grid]]) {
  out_u[gid] = as_type<uint>(f[gid]);
  out_f[gid] = as_type<float>(u[gid]);
  out_h2[gid] = as_type<half2>(u[gid]);
  out_s[gid] = as_type<ushort>(half(f[gid]));
  out_c4[gid] = as_type<char4>(u[gid]);
}
