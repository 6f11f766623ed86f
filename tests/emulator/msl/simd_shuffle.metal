// Conformance: SIMD-group and quad-group data movement: shuffles, shifts, rotations, fills, broadcasts, and the
// poison value a lane reads from an inactive lane.
#include <metal_stdlib>
using namespace metal;

struct MoveArgs {
  uint delta;     // shift / rotate distance, xor mask
  uint modulo;    // segment width for shuffle_and_fill
  uint lane_arg;  // broadcast source lane
};

// 10 results per thread from the data-movement functions, with uniform operands from `a`.
kernel void simd_moves(const device float* x [[buffer(0)]], const device float* fill [[buffer(1)]],
                       const device ushort* src [[buffer(2)]], device float* out [[buffer(3)]],
                       constant MoveArgs& a [[buffer(4)]],
                       uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  float f = fill[gid];
  ushort d = ushort(a.delta);
  device float* o = out + gid * 10;
  o[0] = simd_shuffle(v, src[gid]);
  o[1] = simd_shuffle_down(v, d);
  o[2] = simd_shuffle_up(v, d);
  o[3] = simd_shuffle_xor(v, d);
  o[4] = simd_shuffle_rotate_down(v, d);
  o[5] = simd_shuffle_rotate_up(v, d);
  o[6] = simd_shuffle_and_fill_down(v, f, d);
  o[7] = simd_shuffle_and_fill_up(v, f, d);
  o[8] = simd_shuffle_and_fill_down(v, f, d, ushort(a.modulo));
  o[9] = simd_shuffle_and_fill_up(v, f, d, ushort(a.modulo));
}

// Broadcasts; broadcast_first is also called under divergence (lanes below `first_active` skip it).
kernel void simd_broadcasts(const device int* x [[buffer(0)]], device int* out [[buffer(1)]],
                            constant MoveArgs& a [[buffer(2)]],
                            uint gid [[thread_position_in_grid]],
                            uint lane [[thread_index_in_simdgroup]]) {
  int v = x[gid];
  out[3 * gid] = simd_broadcast(v, ushort(a.lane_arg));
  out[3 * gid + 1] = simd_broadcast_first(v);
  int r = -1;
  if (lane >= a.delta) {
    r = simd_broadcast_first(v);
  }
  out[3 * gid + 2] = r;
}

// A shuffle with a half2 operand moves both components.
kernel void simd_shuffle_half2(const device half2* x [[buffer(0)]], device half2* out [[buffer(1)]],
                               uint lane [[thread_index_in_simdgroup]], uint gid [[thread_position_in_grid]]) {
  out[gid] = simd_shuffle_xor(x[gid], ushort(1));
}

// Lanes >= 16 take no part; the others read lane + 16, which is inactive: the result is undefined (poison).
kernel void shuffle_from_inactive(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                  uint lane [[thread_index_in_simdgroup]], uint gid [[thread_position_in_grid]]) {
  if (lane >= 16) {
    out[gid] = -1.0f;
    return;
  }
  out[gid] = simd_shuffle(x[gid], ushort(lane + 16));
}

// shuffle_down in a partial SIMD group: lanes whose source lane does not exist read poison.
kernel void shuffle_down_partial(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                 uint gid [[thread_position_in_grid]]) {
  out[gid] = simd_shuffle_down(x[gid], ushort(4));
}

// Quad-group functions: 9 results per thread.
kernel void quad_ops(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                     constant MoveArgs& a [[buffer(2)]],
                     uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  device float* o = out + gid * 9;
  o[0] = quad_sum(v);
  o[1] = quad_shuffle(v, ushort(a.lane_arg));
  o[2] = quad_broadcast(v, ushort(a.lane_arg));
  o[3] = quad_prefix_inclusive_sum(v);
  o[4] = quad_prefix_exclusive_sum(v);
  o[5] = quad_shuffle_xor(v, ushort(a.delta));
  o[6] = quad_shuffle_down(v, ushort(a.delta));
  o[7] = quad_shuffle_up(v, ushort(a.delta));
  o[8] = quad_max(v);
}

kernel void quad_votes(const device int* pred [[buffer(0)]], device uint* out [[buffer(1)]],
                       uint gid [[thread_position_in_grid]]) {
  bool p = pred[gid] != 0;
  out[3 * gid] = quad_all(p) ? 1u : 0u;
  out[3 * gid + 1] = quad_any(p) ? 1u : 0u;
  out[3 * gid + 2] = uint(static_cast<quad_vote::vote_t>(quad_ballot(p)));
}
