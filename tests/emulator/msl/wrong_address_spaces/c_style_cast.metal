// A known miss: a C-style cast across address spaces passes the check (as it does in clang). Apple's compiler
// rejects this kernel; the emulator runs it.
#include <metal_stdlib>
using namespace metal;

kernel void c_style_cast(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[32];
  device float* d = (device float*)tile;  // slips through
  d[lid] = out[lid];
}
