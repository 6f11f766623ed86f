// What the row kernels (metal/rms_norm.metal, metal/layer_norm.metal) share: which row a thread works on, the
// row's sum over its threads, and the fused residual add.
//
// Layouts (sizes for Apple GPUs: SIMD width 32, at most 1024 threads per threadgroup):
//   32 x R threadgroups: one SIMD group per row, R rows per threadgroup. The row reduces with one simd_sum: no
//     threadgroup memory, no barrier.
//   P x 1 threadgroups: one threadgroup of P threads per row; the row reduces with simd_sum and then across SIMD
//     groups through threadgroup memory.
// The row is threadgroup_position_in_grid.x * R + thread_position_in_threadgroup.y (R = threads_per_threadgroup.y),
// so the grid must hold whole threadgroups along y, and a threadgroup with R > 1 must be 32 wide.
#pragma once
#include <metal_stdlib>
using namespace metal;

#include "chunk_io.h"

constant constexpr int SIMD_SIZE = 32;

// Sum of `value` over the threadgroup, returned to every thread. `partials` holds one float per SIMD group and
// must not be reused by a later reduction in the same threadgroup without a barrier.
inline float threadgroup_sum(float value, threadgroup float* partials, uint threads, uint simd_lane,
                             uint simd_group) {
  value = simd_sum(value);
  if (simd_lane == 0) {
    partials[simd_group] = value;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint num_groups = (threads + SIMD_SIZE - 1) / SIMD_SIZE;
  const uint lanes = min(uint(SIMD_SIZE), threads - simd_group * SIMD_SIZE);  // the last group may be partial
  float total = 0.0f;
  for (uint i = simd_lane; i < num_groups; i += lanes) {
    total += partials[i];
  }
  return simd_sum(total);
}

// The row a thread works on, its index among the row's threads, and how many threads the row has.
struct RowSlot {
  uint row;
  uint lid;
  uint threads;
};

inline RowSlot row_slot(uint2 group_pos, uint2 lid, uint2 group_size) {
  return RowSlot{group_pos.x * group_size.y + lid.y, lid.x, group_size.x};
}

// Sum over the row's threads: one SIMD group (P <= 32, including the 32 x R layout) or the whole threadgroup.
inline float row_sum(float value, RowSlot s, threadgroup float* partials, uint simd_lane, uint simd_group) {
  if (s.threads <= SIMD_SIZE) {
    return simd_sum(value);
  }
  return threadgroup_sum(value, partials, s.threads, simd_lane, simd_group);
}

// Chunk c of the values a norm sees: x, or the residual sum rounded to T (as the unfused `h = x + residual` in
// T), which is also stored to residual_out.
template <typename T, bool RESIDUAL>
inline void load_row_input(const device T* x, const device T* residual, device T* residual_out, uint c, uint n,
                           bool vec, thread float* v) {
  load_chunk(x, c, n, vec, v);
  if (RESIDUAL) {
    float r[ChunkOf<T>::N];
    load_chunk(residual, c, n, vec, r);
    for (int i = 0; i < ChunkOf<T>::N; i++) {
      v[i] = float(T(v[i] + r[i]));
    }
    store_chunk(residual_out, c, n, vec, v);
  }
}
