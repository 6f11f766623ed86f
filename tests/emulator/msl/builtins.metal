// Conformance: every compute builtin, in uint / ushort / uint2 / uint3 declaration forms, and the plain-loop fast path.
#include <metal_stdlib>
using namespace metal;

// 1-D dispatch: 14 builtins per thread, declared as uint.
kernel void builtins_1d(device uint* out [[buffer(0)]],
                        uint gid [[thread_position_in_grid]],
                        uint lid [[thread_position_in_threadgroup]],
                        uint tgid [[threadgroup_position_in_grid]],
                        uint tpg [[threads_per_threadgroup]],
                        uint grid [[threads_per_grid]],
                        uint ngroups [[threadgroups_per_grid]],
                        uint tidx [[thread_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint sg_width [[threads_per_simdgroup]],
                        uint nsg [[simdgroups_per_threadgroup]],
                        uint qlane [[thread_index_in_quadgroup]],
                        uint qg [[quadgroup_index_in_threadgroup]],
                        uint exec_width [[thread_execution_width]]) {
  device uint* o = out + gid * 14;
  o[0] = gid;
  o[1] = lid;
  o[2] = tgid;
  o[3] = tpg;
  o[4] = grid;
  o[5] = ngroups;
  o[6] = tidx;
  o[7] = lane;
  o[8] = sg;
  o[9] = sg_width;
  o[10] = nsg;
  o[11] = qlane;
  o[12] = qg;
  o[13] = exec_width;
}

// 3-D dispatch with uint3 builtins; the output row is indexed by the linear grid position.
kernel void builtins_3d(device uint* out [[buffer(0)]],
                        uint3 gid [[thread_position_in_grid]],
                        uint3 lid [[thread_position_in_threadgroup]],
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint3 tpg [[threads_per_threadgroup]],
                        uint3 grid [[threads_per_grid]],
                        uint3 ngroups [[threadgroups_per_grid]],
                        uint tidx [[thread_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint nsg [[simdgroups_per_threadgroup]]) {
  uint row = (gid.z * grid.y + gid.y) * grid.x + gid.x;
  device uint* o = out + row * 22;
  for (int i = 0; i < 3; ++i) {
    o[0 + i] = gid[i];
    o[3 + i] = lid[i];
    o[6 + i] = tgid[i];
    o[9 + i] = tpg[i];
    o[12 + i] = grid[i];
    o[15 + i] = ngroups[i];
  }
  o[18] = tidx;
  o[19] = lane;
  o[20] = sg;
  o[21] = nsg;
}

// 2-D dispatch, builtins declared as ushort2 / ushort / uint2, and a scalar declaration of a 3-D builtin (its .x).
kernel void builtins_2d_short(device uint* out [[buffer(0)]],
                              ushort2 gid [[thread_position_in_grid]],
                              ushort2 lid [[thread_position_in_threadgroup]],
                              uint2 tgid [[threadgroup_position_in_grid]],
                              ushort2 tpg [[threads_per_threadgroup]],
                              uint2 grid [[threads_per_grid]],
                              ushort tidx [[thread_index_in_threadgroup]],
                              ushort lane [[thread_index_in_simdgroup]],
                              ushort sg [[simdgroup_index_in_threadgroup]],
                              uint gid_x [[thread_position_in_grid]]) {
  uint row = uint(gid.y) * grid.x + gid.x;
  device uint* o = out + row * 12;
  o[0] = gid.x;
  o[1] = gid.y;
  o[2] = lid.x;
  o[3] = lid.y;
  o[4] = tgid.x;
  o[5] = tgid.y;
  o[6] = tpg.x;
  o[7] = tpg.y;
  o[8] = tidx;
  o[9] = lane;
  o[10] = sg;
  o[11] = gid_x;
}

// A kernel with no barrier and no collective: the plain-loop fast path.
kernel void plain_scale(const device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                        uint gid [[thread_position_in_grid]]) {
  y[gid] = 3.0f * x[gid];
}

// The collective hides in a helper function: the kernel still needs fibers.
static float row_total(float v) { return simd_sum(v); }

kernel void helper_simd_sum(const device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                            uint gid [[thread_position_in_grid]]) {
  y[gid] = row_total(x[gid]);
}

// The remaining builtins: the dispatched (not reduced) group size and quad-group counts.
kernel void builtins_dispatch(device uint* out [[buffer(0)]],
                              uint3 gid [[thread_position_in_grid]],
                              uint3 grid [[threads_per_grid]],
                              uint3 dispatch_tpg [[dispatch_threads_per_threadgroup]],
                              uint nquads [[quadgroups_per_threadgroup]],
                              uint dispatch_nsg [[dispatch_simdgroups_per_threadgroup]],
                              uint dispatch_nquads [[dispatch_quadgroups_per_threadgroup]]) {
  uint row = (gid.z * grid.y + gid.y) * grid.x + gid.x;
  device uint* o = out + row * 6;
  o[0] = dispatch_tpg.x;
  o[1] = dispatch_tpg.y;
  o[2] = dispatch_tpg.z;
  o[3] = nquads;
  o[4] = dispatch_nsg;
  o[5] = dispatch_nquads;
}
