// simdgroup_matrix<T, 8, 8>: an 8x8 matrix spread over the 32 lanes of a SIMD group, two elements per lane.
//
// Lane layout (Apple's, as measured by independent public implementations): lane l holds row
// (l / 16) * 4 + (l / 2) % 4 and columns ((l / 8) % 2) * 4 + (l % 2) * 2 + {0, 1}.
// Loads, stores and element-wise operators are per lane; multiplication is a collective of all 32 lanes.
#pragma once

#include "simd.h"

namespace mtl {
namespace matrix_detail {

inline int lane_row(int l) { return (l / 16) * 4 + (l / 2) % 4; }
inline int lane_col(int l) { return ((l / 8) % 2) * 4 + (l % 2) * 2; }
inline int lane_in_simdgroup() { return int(current_lane().index % kSimdWidth); }

// D = A * B + C. Operands are gathered from every lane's two elements; products accumulate in float.
template <class TA, class TB, class TC, class TD> void resolve_multiply(SimdView& v) {
  for (Lane* lane : v.lanes)
    if (!lane) {
      fail_collective(v, "every lane of the SIMD group must take part in a simdgroup_matrix multiply");
      return;
    }
  float a[8][8], b[8][8], c[8][8];
  for (int l = 0; l < kSimdWidth; ++l) {
    const unsigned char* p = v.lanes[l]->in[0];
    TA ea[2];
    TB eb[2];
    TC ec[2];
    std::memcpy(ea, p, sizeof(ea));
    std::memcpy(eb, p + sizeof(ea), sizeof(eb));
    std::memcpy(ec, v.lanes[l]->in[1], sizeof(ec));
    int r = lane_row(l), c0 = lane_col(l);
    for (int k = 0; k < 2; ++k) {
      a[r][c0 + k] = float(ea[k]);
      b[r][c0 + k] = float(eb[k]);
      c[r][c0 + k] = float(ec[k]);
    }
  }
  for (int l = 0; l < kSimdWidth; ++l) {
    int r = lane_row(l), c0 = lane_col(l);
    TD d[2];
    for (int k = 0; k < 2; ++k) {
      float acc = c[r][c0 + k];
      for (int i = 0; i < 8; ++i) acc += a[r][i] * b[i][c0 + k];
      d[k] = TD(acc);
    }
    std::memcpy(v.lanes[l]->out, d, sizeof(d));
  }
}

}  // namespace matrix_detail
}  // namespace mtl

namespace metal {

template <class T, int Cols, int Rows> struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the emulator supports 8x8 simdgroup matrices only");
  vec<T, 2> elements;

  simdgroup_matrix() = default;
  // Like MSL: a scalar makes a diagonal matrix.
  explicit simdgroup_matrix(T diagonal) {
    int l = ::mtl::matrix_detail::lane_in_simdgroup();
    int r = ::mtl::matrix_detail::lane_row(l), c = ::mtl::matrix_detail::lane_col(l);
    elements = vec<T, 2>(r == c ? diagonal : T(0), r == c + 1 ? diagonal : T(0));
  }
  vec<T, 2>& thread_elements() { return elements; }
  const vec<T, 2>& thread_elements() const { return elements; }
};

using simdgroup_float8x8 = simdgroup_matrix<float, 8, 8>;
using simdgroup_half8x8 = simdgroup_matrix<half, 8, 8>;
using simdgroup_bfloat8x8 = simdgroup_matrix<bfloat, 8, 8>;

// Rows defaults to Cols, as in Apple's declaration: make_filled_simdgroup_matrix<float, 8>(0) is the 8x8 one.
template <class T, int C, int R = C> inline simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, C, R> m;
  m.elements = vec<T, 2>(value, value);
  return m;
}

// Element (r, c) of the matrix is source element (row, col) = (r, c), or (c, r) when transposed, counted from
// matrix_origin (x = column, y = row) in a row-major source with elements_per_row elements per row.
template <class T, class S>
inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& m, const S* src, ulong elements_per_row = 8,
                           ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false) {
  int l = ::mtl::matrix_detail::lane_in_simdgroup();
  int r = ::mtl::matrix_detail::lane_row(l), c0 = ::mtl::matrix_detail::lane_col(l);
  for (int k = 0; k < 2; ++k) {
    ulong row = transpose_matrix ? ulong(c0 + k) : ulong(r), col = transpose_matrix ? ulong(r) : ulong(c0 + k);
    m.elements[k] = T(src[(matrix_origin.y + row) * elements_per_row + matrix_origin.x + col]);
  }
}

template <class T, class S>
inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, S* dst, ulong elements_per_row = 8,
                            ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false) {
  int l = ::mtl::matrix_detail::lane_in_simdgroup();
  int r = ::mtl::matrix_detail::lane_row(l), c0 = ::mtl::matrix_detail::lane_col(l);
  for (int k = 0; k < 2; ++k) {
    ulong row = transpose_matrix ? ulong(c0 + k) : ulong(r), col = transpose_matrix ? ulong(r) : ulong(c0 + k);
    dst[(matrix_origin.y + row) * elements_per_row + matrix_origin.x + col] = S(m.elements[k]);
  }
}

template <class TD, class TA, class TB, class TC>
inline void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                          const simdgroup_matrix<TB, 8, 8>& b, const simdgroup_matrix<TC, 8, 8>& c,
                                          MTL_CALL_SITE) {
  ::mtl::Lane& lane = ::mtl::current_lane();
  std::memcpy(lane.in[0], &a.elements, sizeof(a.elements));
  std::memcpy(lane.in[0] + sizeof(a.elements), &b.elements, sizeof(b.elements));
  std::memcpy(lane.in[1], &c.elements, sizeof(c.elements));
  ::mtl::wait_collective(lane, &::mtl::matrix_detail::resolve_multiply<TA, TB, TC, TD>,
                         "simdgroup_multiply_accumulate", MTL_SITE);
  std::memcpy(&d.elements, lane.out, sizeof(d.elements));
}

template <class TD, class TA, class TB>
inline void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                               const simdgroup_matrix<TB, 8, 8>& b, MTL_CALL_SITE) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<TD, 8, 8>(TD(0)), mtl_file, mtl_line);
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
  d.elements = a.elements + b.elements;
  return d;
}
template <class T>
inline simdgroup_matrix<T, 8, 8> operator-(const simdgroup_matrix<T, 8, 8>& a, const simdgroup_matrix<T, 8, 8>& b) {
  simdgroup_matrix<T, 8, 8> d;
  d.elements = a.elements - b.elements;
  return d;
}

}  // namespace metal
