// Deliberately wrong: a device pointer assigned to a threadgroup pointer.
#include <metal_stdlib>
using namespace metal;

kernel void device_to_threadgroup(device float* x [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[32];
  threadgroup float* t = tile;
  t = x + 1;  // WRONG
  t[lid] = 1.0f;
}
