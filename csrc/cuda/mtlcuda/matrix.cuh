// simdgroup_matrix<T, 8, 8> on a CUDA warp, in Apple's lane layout (csrc/emu/mtl/simdgroup_matrix.h):
// lane l holds row (l / 16) * 4 + (l / 2) % 4, columns ((l / 8) % 2) * 4 + (l % 2) * 2 + {0, 1}.
// A multiply gathers its operands with shuffles (24 per 8x8x8 product) and accumulates in float: correct, but
// nowhere near tensor-core speed, and not meant to be.
#pragma once

#include "simd.cuh"

namespace mtl {
namespace matrix_detail {

inline int lane_row(int l) { return (l / 16) * 4 + (l / 2) % 4; }
inline int lane_col(int l) { return ((l / 8) % 2) * 4 + (l % 2) * 2; }
// The lane holding (row, col) (and col ^ 1).
inline int lane_of(int row, int col) { return (row / 4) * 16 + (col / 4) * 8 + (row % 4) * 2 + (col / 2) % 2; }

}  // namespace matrix_detail
}  // namespace mtl

namespace metal {

template <class T, int Cols, int Rows> struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the CUDA translation supports 8x8 simdgroup matrices only");
  vec<T, 2> elements;

  simdgroup_matrix() = default;
  explicit simdgroup_matrix(T diagonal) {  // like MSL: a scalar makes a diagonal matrix
    const int l = int(::mtl::simd_detail::lane_id());
    const int r = ::mtl::matrix_detail::lane_row(l), c = ::mtl::matrix_detail::lane_col(l);
    elements = vec<T, 2>(r == c ? diagonal : T(0), r == c + 1 ? diagonal : T(0));
  }
  vec<T, 2>& thread_elements() { return elements; }
  const vec<T, 2>& thread_elements() const { return elements; }
};

typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<mtl_half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<mtl_bfloat, 8, 8> simdgroup_bfloat8x8;

// Rows defaults to Cols, as in Apple's declaration: make_filled_simdgroup_matrix<float, 8>(0) is the 8x8 one.
template <class T, int C, int R = C> inline simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, C, R> m;
  m.elements = vec<T, 2>(value, value);
  return m;
}

// D = A * B + C over the whole SIMD group (every lane must take part).
template <class TD, class TA, class TB, class TC>
inline void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                          const simdgroup_matrix<TB, 8, 8>& b, const simdgroup_matrix<TC, 8, 8>& c) {
  using namespace ::mtl::matrix_detail;
  const int lane = int(::mtl::simd_detail::lane_id());
  const int row = lane_row(lane), col = lane_col(lane);
  float acc0 = float(c.elements.v[0]), acc1 = float(c.elements.v[1]);
  const float a0 = float(a.elements.v[0]), a1 = float(a.elements.v[1]);
  const float b0 = float(b.elements.v[0]), b1 = float(b.elements.v[1]);
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    // A[row][k] lives in element k % 2 of lane_of(row, k); B[k][col, col + 1] in lane_of(k, col).
    const float ak = __shfl_sync(0xffffffffu, (k & 1) ? a1 : a0, lane_of(row, k));
    const int src_b = lane_of(k, col);
    const float bk0 = __shfl_sync(0xffffffffu, b0, src_b);
    const float bk1 = __shfl_sync(0xffffffffu, b1, src_b);
    acc0 += ak * bk0;
    acc1 += ak * bk1;
  }
  d.elements.v[0] = TD(acc0);
  d.elements.v[1] = TD(acc1);
}

template <class TD, class TA, class TB>
inline void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                               const simdgroup_matrix<TB, 8, 8>& b) {
  simdgroup_matrix<float, 8, 8> zero = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  simdgroup_multiply_accumulate(d, a, b, zero);
}

template <class T>
inline simdgroup_matrix<T, 8, 8> operator*(const simdgroup_matrix<T, 8, 8>& a, const simdgroup_matrix<T, 8, 8>& b) {
  simdgroup_matrix<T, 8, 8> d;
  simdgroup_multiply(d, a, b);
  return d;
}
template <class T>
inline simdgroup_matrix<T, 8, 8> operator+(const simdgroup_matrix<T, 8, 8>& a, const simdgroup_matrix<T, 8, 8>& b) {
  simdgroup_matrix<T, 8, 8> d;
  d.elements = a.elements + b.elements;  // element-wise: each lane adds its own two elements
  return d;
}
template <class T>
inline simdgroup_matrix<T, 8, 8> operator-(const simdgroup_matrix<T, 8, 8>& a, const simdgroup_matrix<T, 8, 8>& b) {
  simdgroup_matrix<T, 8, 8> d;
  d.elements = a.elements - b.elements;
  return d;
}

// Loads/stores with `elements_per_row` between rows, from `origin` (column, row), optionally transposed.
template <class T, class U>
inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& m, const U* src, unsigned long elements_per_row = 8,
                           mtl_ulong2 origin = mtl_ulong2(0, 0), bool transpose = false) {
  const int lane = int(::mtl::simd_detail::lane_id());
  const int r = ::mtl::matrix_detail::lane_row(lane), c = ::mtl::matrix_detail::lane_col(lane);
  for (int e = 0; e < 2; ++e) {
    const unsigned long row = transpose ? c + e : r, colm = transpose ? r : c + e;
    m.elements.v[e] = T(src[(origin.y + row) * elements_per_row + origin.x + colm]);
  }
}
template <class T, class U>
inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, U* dst, unsigned long elements_per_row = 8,
                            mtl_ulong2 origin = mtl_ulong2(0, 0), bool transpose = false) {
  const int lane = int(::mtl::simd_detail::lane_id());
  const int r = ::mtl::matrix_detail::lane_row(lane), c = ::mtl::matrix_detail::lane_col(lane);
  for (int e = 0; e < 2; ++e) {
    const unsigned long row = transpose ? c + e : r, colm = transpose ? r : c + e;
    dst[(origin.y + row) * elements_per_row + origin.x + colm] = U(m.elements.v[e]);
  }
}

}  // namespace metal
