// Deliberately wrong: writes through a `constant` pointer and a `constant` reference.
#include <metal_stdlib>
using namespace metal;

struct Params {
  uint n;
  float scale;
};

kernel void write_through_constant(constant float* table [[buffer(0)]], constant Params& p [[buffer(1)]],
                                   device float* out [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  table[i] = 0.0f;  // WRONG pointer
  p.scale = 2.0f;  // WRONG reference
  out[i] = table[i] * p.scale;
}
