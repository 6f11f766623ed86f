// Deliberately wrong: a threadgroup array used as a device pointer.
#include <metal_stdlib>
using namespace metal;

kernel void threadgroup_to_device(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[32];
  device float* d = tile;  // WRONG
  d[lid] = out[lid];
}
