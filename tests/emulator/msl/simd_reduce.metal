// Conformance: SIMD-group reductions, scans and votes over the active lanes, including divergent calls and the
// partial last SIMD group of a threadgroup.
#include <metal_stdlib>
using namespace metal;

// Every thread calls each reduction; 6 outputs per thread.
kernel void simd_reduce_float(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                              uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  device float* o = out + gid * 4;
  o[0] = simd_sum(v);
  o[1] = simd_min(v);
  o[2] = simd_max(v);
  o[3] = simd_product(v);
}

kernel void simd_reduce_int(const device int* x [[buffer(0)]], device int* out [[buffer(1)]],
                            uint gid [[thread_position_in_grid]]) {
  int v = x[gid];
  device int* o = out + gid * 7;
  o[0] = simd_sum(v);
  o[1] = simd_min(v);
  o[2] = simd_max(v);
  o[3] = simd_product(v);
  o[4] = simd_and(v);
  o[5] = simd_or(v);
  o[6] = simd_xor(v);
}

// Vector operands reduce component-wise.
kernel void simd_sum_float4(const device float4* x [[buffer(0)]], device float4* out [[buffer(1)]],
                            uint gid [[thread_position_in_grid]]) {
  out[gid] = simd_sum(x[gid]);
}

// Only SIMD group `which` calls simd_sum; the others write a marker.
kernel void simd_sum_one_group(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                               constant uint& which [[buffer(2)]],
                               uint gid [[thread_position_in_grid]],
                               uint sg [[simdgroup_index_in_threadgroup]]) {
  float r = -1.0f;
  if (sg == which) {
    r = simd_sum(x[gid]);
  }
  out[gid] = r;
}

// Only lanes below k call simd_sum; the others finish without taking part.
kernel void simd_sum_low_lanes(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                               constant uint& k [[buffer(2)]],
                               uint gid [[thread_position_in_grid]],
                               uint lane [[thread_index_in_simdgroup]]) {
  float r = -1.0f;
  if (lane < k) {
    r = simd_sum(x[gid]);
  }
  out[gid] = r;
}

// Divergent-then-reconverged: only odd lanes reduce, and after a barrier every lane reduces again.
kernel void simd_sum_then_barrier(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                  uint gid [[thread_position_in_grid]],
                                  uint lane [[thread_index_in_simdgroup]]) {
  float a = -1.0f;
  if (lane % 2 == 1) {
    a = simd_sum(x[gid]);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float b = simd_sum(x[gid]);
  out[2 * gid] = a;
  out[2 * gid + 1] = b;
}

// Prefix scans: 4 outputs per thread.
kernel void simd_scans_float(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                             uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  device float* o = out + gid * 4;
  o[0] = simd_prefix_inclusive_sum(v);
  o[1] = simd_prefix_exclusive_sum(v);
  o[2] = simd_prefix_inclusive_product(v);
  o[3] = simd_prefix_exclusive_product(v);
}

kernel void simd_scans_int(const device int* x [[buffer(0)]], device int* out [[buffer(1)]],
                           uint gid [[thread_position_in_grid]]) {
  int v = x[gid];
  out[2 * gid] = simd_prefix_inclusive_sum(v);
  out[2 * gid + 1] = simd_prefix_exclusive_sum(v);
}

// Stream compaction: lanes with a positive value take a slot from an exclusive scan over the active lanes only.
kernel void compact_positive(const device float* x [[buffer(0)]], device int* slot [[buffer(1)]],
                             uint gid [[thread_position_in_grid]]) {
  int s = -1;
  if (x[gid] > 0.0f) {
    s = simd_prefix_exclusive_sum(1);
  }
  slot[gid] = s;
}

// Votes: all / any / ballot / active mask / is_first, for a predicate and under divergence (lanes >= k finish early).
kernel void simd_votes(const device int* pred [[buffer(0)]], device uint* out [[buffer(1)]],
                       constant uint& k [[buffer(2)]],
                       uint gid [[thread_position_in_grid]],
                       uint lane [[thread_index_in_simdgroup]]) {
  device uint* o = out + gid * 7;
  for (int i = 0; i < 7; ++i) o[i] = 0xEEEEEEEEu;
  if (lane >= k) {
    return;
  }
  bool p = pred[gid] != 0;
  o[0] = simd_all(p) ? 1u : 0u;
  o[1] = simd_any(p) ? 1u : 0u;
  simd_vote::vote_t ballot = static_cast<simd_vote::vote_t>(simd_ballot(p));
  o[2] = uint(ballot & 0xFFFFFFFFu);
  o[3] = uint(ballot >> 32);
  simd_vote::vote_t active = static_cast<simd_vote::vote_t>(simd_active_threads_mask());
  o[4] = uint(active & 0xFFFFFFFFu);
  o[5] = uint(active >> 32);
  o[6] = simd_is_first() ? 1u : 0u;
}

// half operands: the result type is half.
kernel void simd_half_ops(const device half* x [[buffer(0)]], device half* out [[buffer(1)]],
                          uint gid [[thread_position_in_grid]]) {
  half v = x[gid];
  out[3 * gid] = simd_sum(v);
  out[3 * gid + 1] = simd_max(v);
  out[3 * gid + 2] = simd_prefix_inclusive_sum(v);
}

// SIMD groups of a 2-D threadgroup are runs of 32 linear indices (x fastest), also in reduced edge groups.
kernel void simd_sum_2d(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                        uint2 gid [[thread_position_in_grid]], uint2 grid [[threads_per_grid]]) {
  uint i = gid.y * grid.x + gid.x;
  out[i] = simd_sum(x[i]);
}

// A collective inside a loop whose trip count differs per lane: iteration i runs with the lanes still looping.
kernel void simd_sum_in_ragged_loop(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]],
                                    uint lane [[thread_index_in_simdgroup]]) {
  float total = 0.0f;
  for (uint i = 0; i < lane; ++i) {
    total += simd_sum(1.0f);
  }
  out[gid] = total;
}
