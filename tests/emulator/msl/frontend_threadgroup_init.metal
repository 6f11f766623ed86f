// Conformance: threadgroup variables declared with an initializer are still threadgroup variables.
// Apple's compiler accepts `threadgroup T x[N] = {...};` (MLX's layer_norm.metal has one) but does not promise to
// run the initializer, so the emulator keeps the storage shared by the threadgroup and leaves it poisoned.
#include <metal_stdlib>
using namespace metal;

// Lane 0 writes after the declaration; after the barrier every lane reads lane 0's value.
kernel void initialized_array_is_shared(device float* out [[buffer(0)]],
                                        uint lid [[thread_position_in_threadgroup]],
                                        uint gid [[thread_position_in_grid]]) {
  threadgroup float buf[32] = {0};  // INIT_DECL
  if (lid == 0) {
    buf[0] = 1;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = buf[0];
}

// Two declarators, one scalar with a brace initializer and one array with `= {...}`, plus a plain one.
kernel void initialized_declarators_are_shared(device int* out [[buffer(0)]],
                                               uint lid [[thread_position_in_threadgroup]],
                                               uint gid [[thread_position_in_grid]]) {
  threadgroup int count{0}, slots[4] = {1, 2, 3, 4};
  threadgroup int plain;
  if (lid == 1) {
    count = 7;
    slots[2] = 9;
    plain = 5;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[gid] = count * 100 + slots[2] * 10 + plain;
}

// The initializer is not run: a read before any write sees the poison of uninitialised threadgroup memory.
kernel void initializer_is_not_run(device float* out [[buffer(0)]],
                                   uint lid [[thread_position_in_threadgroup]],
                                   uint gid [[thread_position_in_grid]]) {
  threadgroup float zeros[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  out[gid] = zeros[lid % 8];
}
