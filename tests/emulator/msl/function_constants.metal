// Conformance: function constants in the style of large Metal libraries: a templated kernel instantiated through a
// macro, a function constant that decides whether a buffer is bound, is_function_constant_defined, and
// constants of several types.
#include <metal_stdlib>
using namespace metal;

constant bool has_bias [[function_constant(0)]];
constant float scale [[function_constant(1)]];
constant int offset [[function_constant(2)]];
constant uint repeats [[function_constant(3)]];
// The usual way to give an optional constant a default.
constant int offset_or_zero = is_function_constant_defined(offset) ? offset : 0;

template <typename T>
[[kernel]] void affine(const device T* x [[buffer(0)]],
                       const device T* bias [[buffer(1), function_constant(has_bias)]],
                       device T* out [[buffer(2)]],
                       uint gid [[thread_position_in_grid]]) {
  float v = float(x[gid]) * scale;
  if (has_bias) {
    v += float(bias[gid]);
  }
  v += float(offset_or_zero);
  if (is_function_constant_defined(offset)) {
    v += 100.0f;
  }
  for (uint i = 0; i < repeats; ++i) {
    v += 1.0f;
  }
  out[gid] = T(v);
}

#define INSTANTIATE_AFFINE(tname, T) \
  template [[host_name("affine" "_" #tname)]] [[kernel]] decltype(affine<T>) affine<T>;

INSTANTIATE_AFFINE(float32, float)
INSTANTIATE_AFFINE(float16, half)
