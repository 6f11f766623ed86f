// Conformance: out-of-bounds accesses inside threadgroup memory, caught under bounds checking
// (MPSKERNELS_EMULATOR_BOUNDS=1). Each kernel but the last makes one deliberate mistake; `tile` arrays hold 64
// floats (256 bytes) and the kernels run in groups of 64 threads. Threadgroups with an even linear index place
// their arrays against the guard after them, odd ones against the guard before them; the comments describe the
// even case, which runs first with one worker.
#include <metal_stdlib>
using namespace metal;

// Lane 63 writes tile[64]: one element past the end, into the trailing guard page (faults at once).
kernel void write_past_end(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                           uint gid [[thread_position_in_grid]]) {
  threadgroup float tile[64];
  tile[lid + 1] = float(lid);  // MARK: write_past_end
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = tile[lid];
}

// Lane 63 reads tile[64].
kernel void read_past_end(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                          uint gid [[thread_position_in_grid]]) {
  threadgroup float tile[64];
  tile[lid] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = tile[lid + 1];  // MARK: read_past_end
}

// Lane 0 writes tile[-1]: into the red zone before the array, found at the next barrier.
kernel void write_before_start(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                               uint gid [[thread_position_in_grid]]) {
  threadgroup float tile[64];
  tile[int(lid) - 1] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);  // MARK: write_before_start barrier
  out[gid] = tile[lid];
}

// Only odd threadgroups write tile[64], which lies in their red zone (their array starts at the leading guard).
kernel void write_past_end_in_odd_groups(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                                         uint gid [[thread_position_in_grid]],
                                         uint tgid [[threadgroup_position_in_grid]]) {
  threadgroup float tile[64];
  tile[lid] = 0.0f;
  if (tgid % 2 == 1) tile[lid + 1] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);  // MARK: odd barrier
  out[gid] = tile[lid];
}

// Lane 0 reads tile[-1]: in the red zone of threadgroups with an even index (not caught there), against the
// leading guard in odd ones (faults).
kernel void read_before_start(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                              uint gid [[thread_position_in_grid]]) {
  threadgroup float tile[64];
  tile[lid] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = tile[int(lid) - 1];
}

// Lane 0 reads tile[-1024], 4 KiB before the start: past the red zone, into the leading guard.
kernel void read_far_before_start(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                                  uint gid [[thread_position_in_grid]]) {
  threadgroup float tile[64];
  tile[lid] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = tile[int(lid) - 1024];
}

// Two arrays side by side: in the plain arena, a[64] is b[0] and the mistake would go unnoticed.
kernel void overrun_into_neighbour(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                                   uint gid [[thread_position_in_grid]]) {
  threadgroup float a[64];
  threadgroup float b[64];
  b[lid] = 1.0f;
  a[lid] = 2.0f;
  if (lid == 0) a[64] = 3.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = a[lid] + b[lid];
}

// A 20-byte array (5 floats) keeps 12 bytes of slack before its guard page so that it starts 16-byte aligned;
// odd[5] lands in the slack, found at the end of the threadgroup (this kernel has no barrier: the plain loop).
kernel void write_into_slack(device float* out [[buffer(0)]], uint lid [[thread_index_in_threadgroup]],
                             uint gid [[thread_position_in_grid]]) {
  threadgroup float odd[5];
  if (lid < 6) odd[lid] = 1.0f;
  out[gid] = 0.0f;
}

// A [[threadgroup(0)]] argument of 256 bytes (64 floats), written one element past its end.
kernel void argument_overrun(device float* out [[buffer(0)]], threadgroup float* scratch [[threadgroup(0)]],
                             uint lid [[thread_index_in_threadgroup]], uint gid [[thread_position_in_grid]]) {
  scratch[lid + 1] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = scratch[lid];
}

// In bounds everywhere: the first and last element of every array, declared and dynamic, read and written.
kernel void edges_in_bounds(device float* out [[buffer(0)]], threadgroup float* scratch [[threadgroup(0)]],
                            uint lid [[thread_index_in_threadgroup]], uint gid [[thread_position_in_grid]],
                            uint tpg [[threads_per_threadgroup]]) {
  threadgroup float tile[64];
  threadgroup half odd[5];
  tile[lid] = float(lid);
  scratch[lid] = 2.0f * float(lid);
  if (lid < 5) odd[lid] = half(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = tile[tpg - 1 - lid] + scratch[tpg - 1 - lid] + float(odd[lid % 5]);
}
