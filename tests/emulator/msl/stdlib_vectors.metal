// Conformance: vector forms Apple's compiler accepts. Multi-component swizzles read (v.xy, v.zyx, v.xxyy, v.bgr)
// and write (v.yx = w, v.zw += u, a.yz = b.yz); braces with fewer components zero the rest ({a, b, c} for a
// uint4, {1.0f} for a float4 is (1, 0, 0, 0)); is_floating_point_v<half2> holds; as_type needs no metal::.
#include <metal_stdlib>

// out[16 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void stdlib_vectors(const device float4* xs [[buffer(0)]], device float* out [[buffer(1)]],
                           uint gid [[thread_position_in_grid]]) {
  const float4 v = xs[gid];
  device float* o = out + 16 * gid;
  const float2 xy = v.xy;
  const float3 zyx = v.zyx;
  const float4 xxyy = v.xxyy;
  o[0] = xy.x + 10.0f * xy.y;
  o[1] = zyx.x + 10.0f * zyx.y + 100.0f * zyx.z;
  o[2] = xxyy.x + 10.0f * xxyy.y + 100.0f * xxyy.z + 1000.0f * xxyy.w;
  float4 w = v;
  w.yx = float2(7.0f, 8.0f);   // w.y = 7, w.x = 8
  w.zw += 1.0f;
  o[3] = w.x;
  o[4] = w.y;
  o[5] = w.z + w.w;
  float4 a = float4(0.0f);
  a.yz = v.yz;                 // the same swizzle on both sides: only y and z are copied
  o[6] = a.x + a.y + a.z + a.w;
  const half2 h = half2(v.wz);
  o[7] = float(h.x) - float(h.y);
  o[8] = metal::dot(v.xy, v.zw) + metal::length(float3(v.bgr));
  const uint4 u = {gid, gid + 1u, gid + 2u};
  o[9] = float(u.x + u.y + u.z) + 1000.0f * float(u.w);
  const float4 one = {1.0f};
  o[10] = one.x + 10.0f * (one.y + one.z + one.w);
  o[11] = float(metal::is_floating_point_v<half2>) + 2.0f * float(metal::is_floating_point_v<int2>) +
          4.0f * float(metal::is_scalar_v<half2>);
  o[12] = as_type<float>(as_type<uint>(v.x));
  const uint2 bits = as_type<uint2>(v.yx);
  o[13] = as_type<float>(bits.x);  // v.y: the swizzled value, not the storage order
  const float4 built = float4(v.zw, v.xy);
  o[14] = built.x + 10.0f * built.w;
  o[15] = float(all(v.xy == xy));
}
