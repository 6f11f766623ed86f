// Deliberately wrong: a device pointer taken as a thread (private) pointer, by a helper's parameter and by a
// local pointer.
#include <metal_stdlib>
using namespace metal;

static float first(thread const float* values) {
  return values[0];
}

kernel void device_to_thread(const device float* x [[buffer(0)]], device float* out [[buffer(1)]]) {
  out[0] = first(x);  // WRONG parameter
  thread const float* p = x;  // WRONG local
  out[1] = p[1];
}
