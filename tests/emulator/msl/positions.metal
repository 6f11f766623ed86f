// Conformance: a kernel whose threads never meet (position builtins only; no threadgroup memory, barrier or SIMD
// function anywhere in this file). The NVIDIA lane launches such a kernel's ragged grid as one launch whose padding
// threads return at once; every builtin must still read as dispatchThreads gives it, edge threadgroups included.
#include <metal_stdlib>
using namespace metal;

kernel void positions_3d(device uint* out [[buffer(0)]],
                         uint3 gid [[thread_position_in_grid]],
                         uint3 lid [[thread_position_in_threadgroup]],
                         uint3 tgid [[threadgroup_position_in_grid]],
                         uint3 tpg [[threads_per_threadgroup]],
                         uint3 grid [[threads_per_grid]],
                         uint3 ngroups [[threadgroups_per_grid]]) {
  device uint* o = out + ((gid.z * grid.y + gid.y) * grid.x + gid.x) * 18;
  const uint3 values[6] = {gid, lid, tgid, tpg, grid, ngroups};
  for (int k = 0; k < 6; k++) {
    o[3 * k] = values[k].x;
    o[3 * k + 1] = values[k].y;
    o[3 * k + 2] = values[k].z;
  }
}
