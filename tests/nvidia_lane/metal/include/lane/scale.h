// A header found through include_dirs, as the anchors' headers are.
#pragma once
#include <metal_stdlib>
using namespace metal;

template <typename T>
[[kernel]] void scale_add(device const T* x [[buffer(0)]], device T* y [[buffer(1)]],
                          constant float& alpha [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  y[i] = T(float(x[i]) * alpha + LANE_OFFSET);
}
