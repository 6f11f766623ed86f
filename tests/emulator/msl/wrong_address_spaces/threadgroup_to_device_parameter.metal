// Deliberately wrong: a threadgroup array passed to a function that takes `device float*`.
#include <metal_stdlib>
using namespace metal;

static void fill(device float* p, uint i) {
  p[i] = float(i);
}

kernel void threadgroup_to_device_parameter(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[32];
  fill(tile, lid);  // WRONG
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[lid] = tile[lid];
}
