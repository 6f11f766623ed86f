// Conformance: atomics on device memory from many threadgroups (which the emulator runs on several OS threads) and
// on threadgroup memory.
#include <metal_stdlib>
using namespace metal;

// Histogram straight into device memory; every thread also keeps the ticket fetch_add returned.
kernel void device_histogram(const device uint* x [[buffer(0)]], device atomic_uint* bins [[buffer(1)]],
                             device atomic_uint* counter [[buffer(2)]], device uint* tickets [[buffer(3)]],
                             constant uint& nbins [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
  atomic_fetch_add_explicit(&bins[x[gid] % nbins], 1u, memory_order_relaxed);
  tickets[gid] = atomic_fetch_add_explicit(counter, 1u, memory_order_relaxed);
}

// Per-threadgroup histogram in threadgroup atomics, then merged into device memory.
kernel void threadgroup_histogram(const device uint* x [[buffer(0)]], device atomic_uint* bins [[buffer(1)]],
                                  uint gid [[thread_position_in_grid]],
                                  uint lid [[thread_index_in_threadgroup]],
                                  uint tpg [[threads_per_threadgroup]]) {
  threadgroup atomic_uint local_bins[16];
  for (uint i = lid; i < 16; i += tpg) atomic_store_explicit(&local_bins[i], 0u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&local_bins[x[gid] % 16], 1u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint i = lid; i < 16; i += tpg) {
    uint c = atomic_load_explicit(&local_bins[i], memory_order_relaxed);
    if (c) atomic_fetch_add_explicit(&bins[i], c, memory_order_relaxed);
  }
}

// Global min and max of int values, and a sum through fetch_sub on a second counter.
kernel void min_max_sub(const device int* x [[buffer(0)]], device atomic_int* mn [[buffer(1)]],
                        device atomic_int* mx [[buffer(2)]], device atomic_int* down [[buffer(3)]],
                        uint gid [[thread_position_in_grid]]) {
  atomic_fetch_min_explicit(mn, x[gid], memory_order_relaxed);
  atomic_fetch_max_explicit(mx, x[gid], memory_order_relaxed);
  atomic_fetch_sub_explicit(down, x[gid], memory_order_relaxed);
}

// A float maximum built from a compare-exchange loop on the bits (the classic pattern), and a CAS-claimed slot.
kernel void cas_patterns(const device float* x [[buffer(0)]], device atomic_uint* max_bits [[buffer(1)]],
                         device atomic_int* next_slot [[buffer(2)]], device int* slots [[buffer(3)]],
                         uint gid [[thread_position_in_grid]]) {
  float v = x[gid];
  uint expected = atomic_load_explicit(max_bits, memory_order_relaxed);
  while (as_type<float>(expected) < v) {
    if (atomic_compare_exchange_weak_explicit(max_bits, &expected, as_type<uint>(v), memory_order_relaxed,
                                              memory_order_relaxed)) {
      break;
    }
  }
  int slot = atomic_load_explicit(next_slot, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(next_slot, &slot, slot + 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
  slots[gid] = slot;
}

// Float atomic add on device memory (MSL 3.0), and an exchange that leaves exactly one survivor.
kernel void float_add_exchange(const device float* x [[buffer(0)]], device atomic_float* acc [[buffer(1)]],
                               device atomic_uint* last [[buffer(2)]], device uint* seen [[buffer(3)]],
                               uint gid [[thread_position_in_grid]]) {
  atomic_fetch_add_explicit(acc, x[gid], memory_order_relaxed);
  seen[gid] = atomic_exchange_explicit(last, gid, memory_order_relaxed);
}

// Bit operations: each thread sets its bit in a word, clears it in another, flips it in a third.
kernel void bit_atomics(device atomic_uint* words [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  uint bit = 1u << (gid % 32);
  atomic_fetch_or_explicit(&words[0], bit, memory_order_relaxed);
  atomic_fetch_and_explicit(&words[1], ~bit, memory_order_relaxed);
  atomic_fetch_xor_explicit(&words[2], bit, memory_order_relaxed);
}

// Threadgroup-memory float atomics: a per-group sum, written by lane 0.
kernel void threadgroup_float_sum(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                  uint gid [[thread_position_in_grid]], uint lid [[thread_index_in_threadgroup]],
                                  uint tgid [[threadgroup_position_in_grid]]) {
  threadgroup atomic_float total;
  if (lid == 0) atomic_store_explicit(&total, 0.0f, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&total, x[gid], memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (lid == 0) out[tgid] = atomic_load_explicit(&total, memory_order_relaxed);
}
