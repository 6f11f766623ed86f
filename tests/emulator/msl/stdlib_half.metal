// Conformance: half and bfloat as Metal scalars. They sit in anonymous unions and structs (ggml's block types),
// `cond ? 0 : h` has type half as in MSL, and arithmetic rounds after every operation.
#include <metal_stdlib>
using namespace metal;

struct block {
  union {
    struct { half d; half m; };
    uint dm;
  };
  half2 pair;
};

// out[4 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void stdlib_half(const device half* xs [[buffer(0)]], device float* out [[buffer(1)]],
                        uint gid [[thread_position_in_grid]]) {
  const half h = xs[gid];
  block blk;
  blk.d = h;
  blk.m = half(2);
  device float* o = out + 4 * gid;
  o[0] = float(blk.d) * float(blk.m) + float(as_type<half2>(blk.dm).y);
  const auto picked = (gid % 2 == 0) ? 0 : h;  // MSL: half
  o[1] = float(picked) + (is_same_v<decltype(picked), const half> ? 100.0f : 0.0f);
  o[2] = float(h + half(1) - h);  // rounds after each operation: the 1 is lost for |h| >= 2048
  const bfloat b = bfloat(h);
  o[3] = float((gid % 2 == 1) ? 1 : b);
}
