// Conformance: half and bfloat convert as Metal's arithmetic types do, though the emulator's are C++ classes.
// - `c ? x : y` takes the usual arithmetic conversions: half with float is a float (PyTorch's `? NAN : h`), half
//   with an integer or bool is a half; two half lvalues still make an lvalue.
// - half converts implicitly to the integers, truncating (MLX's sort.metal assigns a half to a uint).
// - a class with `operator bool` converts on to half and bfloat (MLX's _NoMask in steel_gemm_masked.metal).
// - `x op= h` is `x = x op h`: float arithmetic for a float x, half arithmetic for an integer x.
// - an integer operand of half/bfloat arithmetic is converted (rounded) to that type first.
// - a half argument picks the float overload of `f(float)` / `f(Pair)` (MLX's log1p with complex64_t).
#include <metal_stdlib>
using namespace metal;

struct Pair {
  float re, im;
  template <typename U>
  Pair(U x) : re(static_cast<float>(x)), im(0) {}
};

// Computed in float: the half argument is not rounded again on the way out.
float third_of(float x) { return x / 3.0f; }
Pair third_of(Pair p) { return Pair(p.re); }

struct AlwaysOn {
  char x;
  constexpr operator bool() const { return true; }
};

template <typename T>
struct Scale {
  T scale;
};

// out[12 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void half_conversions(const device half* xs [[buffer(0)]], device float* out [[buffer(1)]],
                             uint gid [[thread_position_in_grid]]) {
  const half h = xs[gid];
  const bool odd = gid % 2 == 1;
  device float* o = out + 12 * gid;
  const auto f = odd ? 1.0f / 3.0f : h;  // MSL: float, so 1/3 keeps float precision
  o[0] = f + (is_same_v<decltype(odd ? NAN : h), float> ? 100.0f : 0.0f);
  const auto z = odd ? h : 1;  // MSL: half
  o[1] = float(z) + (is_same_v<decltype(z), const half> ? 100.0f : 0.0f);
  half a = h, b = -h;
  (odd ? a : b) = half(7);  // still an lvalue
  o[2] = float(a) + 10.0f * float(b);
  uint u = h;  // truncates toward zero (h is positive here)
  int i = -h;
  o[3] = float(u) + 1000.0f * float(i);
  Scale<half> sh;
  Scale<bfloat> sb;
  sh.scale = AlwaysOn{};
  sb.scale = AlwaysOn{};
  o[4] = float(sh.scale) + 10.0f * float(sb.scale);
  o[5] = third_of(h);
  const half r = odd ? NAN : h;  // float NaN converted to half
  o[6] = isnan(r) ? -1.0f : float(r);
  o[7] = float(h + (odd ? h : 0.5f));  // half + float is float
  float acc = 1.0f / 3.0f;
  acc += h;
  o[8] = acc;
  int k = 3001;
  k += h < half(60000) ? h : half(1);  // half(3001) + h, rounded to half, truncated (65504 would overflow)
  o[9] = float(k);
  const bfloat one = bfloat(1.0f + float(gid % 1));  // not a constant the compiler folds
  o[10] = float(one + 257);  // 257 is 256 in bfloat: 1 + 256 rounds to 256 (even), not 258
  o[11] = (half(3000.0f * float(one)) == 3001 ? 1.0f : 0.0f) + (3001 == half(3000) ? 10.0f : 0.0f);  // 3001 is 3000 in half
}

// A conditional array bound of a threadgroup array (MLX's quantized.h): still one shared array of that size.
template <bool wide>
kernel void conditional_bound(device float* out [[buffer(0)]], uint lid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[wide ? 64 : 32];
  tile[lid] = float(sizeof(tile) / sizeof(float));
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[lid] = tile[31 - lid];
}
template [[host_name("conditional_bound_wide")]] kernel void conditional_bound<true>(device float*, uint);
