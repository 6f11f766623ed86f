// Conformance: threadgroup memory (poisoned at group start, [[threadgroup(n)]] arguments, the 32 KiB limit),
// barriers (a missing one exposed by the shuffled order, deadlock detection) and divergent collectives.
#include <metal_stdlib>
using namespace metal;

// Reads threadgroup memory before anything writes it, then writes it: every group must see poison again.
kernel void read_uninitialised(device float* out [[buffer(0)]], device int* iout [[buffer(1)]],
                               uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float f[64];
  threadgroup int i[64];
  out[gid] = f[lid];
  iout[gid] = i[lid];
  f[lid] = 1.0f;
  i[lid] = 1;
}

// Block sum through a [[threadgroup(0)]] scratch array sized at dispatch time; [[threadgroup(1)]] must not overlap.
kernel void block_sum_dynamic(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                              threadgroup float* scratch [[threadgroup(0)]],
                              threadgroup uint* marks [[threadgroup(1)]],
                              uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]],
                              uint tpg [[threads_per_threadgroup]], uint tgid [[threadgroup_position_in_grid]]) {
  scratch[lid] = x[gid];
  marks[lid] = 0xA5A5A5A5u;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = 1; stride < tpg; stride *= 2) {
    float other = (lid % (2 * stride) == 0 && lid + stride < tpg) ? scratch[lid + stride] : 0.0f;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    scratch[lid] += other;
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (lid == 0) {
    uint ok = 1;
    for (uint k = 0; k < tpg; ++k) ok &= marks[k] == 0xA5A5A5A5u ? 1u : 0u;
    out[2 * tgid] = scratch[0];
    out[2 * tgid + 1] = float(ok);
  }
}

// 40 KiB of threadgroup memory: more than Apple GPUs have.
kernel void too_much_threadgroup_memory(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float big[10240];  // BIG_DECL
  big[lid] = 1.0f;
  out[lid] = big[lid];
}

// 20 KiB declared; together with a large [[threadgroup(0)]] argument it can exceed 32 KiB.
kernel void static_plus_dynamic(device float* out [[buffer(0)]], threadgroup float* dyn [[threadgroup(0)]],
                                uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float fixed[5120];
  fixed[lid] = 2.0f;
  dyn[lid] = 3.0f;
  out[lid] = fixed[lid] + dyn[lid];
}

// Only a [[threadgroup(0)]] argument (no declared arrays): its size alone is checked against 32 KiB.
kernel void dynamic_only(device float* out [[buffer(0)]], threadgroup float* dyn [[threadgroup(0)]],
                         uint lid [[thread_index_in_threadgroup]], uint tpg [[threads_per_threadgroup]]) {
  dyn[lid] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[lid] = dyn[tpg - 1 - lid];
}

// Shift left through threadgroup memory. The racy version lacks the barrier between reading the right neighbour
// and overwriting its own slot: correct only if lanes happen to run in increasing order.
kernel void shift_racy(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                       uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]],
                       uint tpg [[threads_per_threadgroup]]) {
  threadgroup float s[256];
  s[lid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float right = lid + 1 < tpg ? s[lid + 1] : 0.0f;
  s[lid] = right;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = s[lid];
}

kernel void shift_synced(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                         uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]],
                         uint tpg [[threads_per_threadgroup]]) {
  threadgroup float s[256];
  s[lid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float right = lid + 1 < tpg ? s[lid + 1] : 0.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  s[lid] = right;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = s[lid];
}

// Threads 0..15 and the rest wait at two different barriers: a deadlock on a GPU.
kernel void barrier_deadlock(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]]) {
  if (lid < 16) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // DEADLOCK_A
  } else {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // DEADLOCK_B
  }
  out[lid] = 1.0f;
}

// Lanes of one SIMD group at two different simd_sum call sites at once.
kernel void divergent_collective(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                 uint gid [[thread_position_in_grid]], uint lane [[thread_index_in_simdgroup]]) {
  float r;
  if (lane < 8) {
    r = simd_sum(x[gid]);  // DIVERGENT_A
  } else {
    r = simd_sum(2.0f * x[gid]);  // DIVERGENT_B
  }
  out[gid] = r;
}

// A declared limit below 1024.
[[kernel, max_total_threads_per_threadgroup(64)]] void limited_group(device float* out [[buffer(0)]],
                                                                     uint gid [[thread_position_in_grid]]) {
  out[gid] = 1.0f;
}

// Threads beyond n return before the barriers (the usual bounds check); the rest still synchronise.
kernel void early_return_then_barrier(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                      constant uint& n [[buffer(2)]],
                                      uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]],
                                      uint tpg [[threads_per_threadgroup]]) {
  if (gid >= n) return;
  threadgroup float s[128];
  s[lid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  uint active = min(tpg, n - (gid - lid));
  out[gid] = s[active - 1 - lid];
}

// Two declarators in one statement and a 2-D threadgroup array (a padded transpose tile).
kernel void transpose_tile(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                           device float* sums [[buffer(2)]],
                           uint2 lid [[thread_position_in_threadgroup]], uint2 tgid [[threadgroup_position_in_grid]],
                           uint2 ngroups [[threadgroups_per_grid]]) {
  threadgroup float tile[8][9], row_sum[8], col_sum[8];
  uint W = ngroups.x * 8;
  uint gx = tgid.x * 8 + lid.x, gy = tgid.y * 8 + lid.y;
  tile[lid.y][lid.x] = x[gy * W + gx];
  if (lid.x == 0) row_sum[lid.y] = 0.0f;
  if (lid.y == 0) col_sum[lid.x] = 0.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  uint H = ngroups.y * 8;
  out[(tgid.x * 8 + lid.y) * H + tgid.y * 8 + lid.x] = tile[lid.x][lid.y];
  if (lid.x == 0) {
    for (int i = 0; i < 8; ++i) row_sum[lid.y] += tile[lid.y][i];
  }
  if (lid.y == 0) {
    for (int i = 0; i < 8; ++i) col_sum[lid.x] += tile[i][lid.x];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (lid.x == 0 && lid.y == 0) {
    float r = 0.0f, c = 0.0f;
    for (int i = 0; i < 8; ++i) {
      r += row_sum[i];
      c += col_sum[i];
    }
    sums[2 * (tgid.y * ngroups.x + tgid.x)] = r;
    sums[2 * (tgid.y * ngroups.x + tgid.x) + 1] = c;
  }
}

// Neighbour exchange inside one SIMD group synchronised by simdgroup_barrier only.
kernel void simdgroup_barrier_exchange(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                       uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]]) {
  threadgroup float s[256];
  s[lid] = x[gid];
  simdgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = s[lid ^ 1];
}
