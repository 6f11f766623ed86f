// Conformance: simdgroup_matrix<T, 8, 8> for float, half and bfloat: load/store with elements_per_row, matrix_origin
// and transpose, multiply, multiply_accumulate, the matrix operators and the per-lane element layout.
#include <metal_stdlib>
using namespace metal;

// C (M x N) = A (M x K) * B (K x N), all row-major; one SIMD group per 8x8 tile of C, K in steps of 8.
// B is read transposed from Bt (N x K) when transpose_b is set.
template <typename T>
kernel void gemm_tiles(const device T* A [[buffer(0)]], const device T* B [[buffer(1)]],
                       device float* C [[buffer(2)]], constant uint3& mnk [[buffer(3)]],
                       constant uint& transpose_b [[buffer(4)]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint tgid [[threadgroup_position_in_grid]],
                       uint nsg [[simdgroups_per_threadgroup]]) {
  const uint M = mnk.x, N = mnk.y, K = mnk.z;
  const uint tiles_n = N / 8;
  const uint tile = tgid * nsg + sg;
  if (tile >= (M / 8) * tiles_n) return;
  const uint row0 = tile / tiles_n * 8, col0 = tile % tiles_n * 8;
  simdgroup_matrix<float, 8, 8> acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (uint k = 0; k < K; k += 8) {
    simdgroup_matrix<T, 8, 8> a, b;
    simdgroup_load(a, A, K, ulong2(k, row0));
    if (transpose_b) {
      simdgroup_load(b, B, K, ulong2(k, col0), true);
    } else {
      simdgroup_load(b, B, N, ulong2(col0, k));
    }
    simdgroup_multiply_accumulate(acc, a, b, acc);
  }
  simdgroup_store(acc, C, N, ulong2(col0, row0));
}

template [[host_name("gemm_float")]] kernel decltype(gemm_tiles<float>) gemm_tiles<float>;
template [[host_name("gemm_half")]] kernel decltype(gemm_tiles<half>) gemm_tiles<half>;
template [[host_name("gemm_bfloat")]] kernel decltype(gemm_tiles<bfloat>) gemm_tiles<bfloat>;

// One 8x8 tile: D = A * B with the operator, E = A + B, F = diag(2) * A, G = transpose stored; output in T.
kernel void matrix_ops_half(const device half* A [[buffer(0)]], const device half* B [[buffer(1)]],
                            device half* out [[buffer(2)]]) {
  simdgroup_half8x8 a, b;
  simdgroup_load(a, A);
  simdgroup_load(b, B);
  simdgroup_half8x8 d = a * b;
  simdgroup_store(d, out);
  simdgroup_store(a + b, out + 64);
  simdgroup_half8x8 two(2.0h);
  simdgroup_half8x8 f;
  simdgroup_multiply(f, two, a);
  simdgroup_store(f, out + 128);
  simdgroup_store(a, out + 192, 8, ulong2(0, 0), true);
}

// Which elements each lane holds: lane l writes (row * 8 + col) of its two thread_elements().
kernel void lane_layout(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float tile[64];
  for (uint i = lane; i < 64; i += 32) tile[i] = float(i);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 m;
  simdgroup_load(m, tile);
  out[2 * lane] = m.thread_elements()[0];
  out[2 * lane + 1] = m.thread_elements()[1];
}
