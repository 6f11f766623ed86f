// Conformance: explicit instantiation forms real headers use.
#include <metal_stdlib>
using namespace metal;

namespace outer {
namespace inner {
template <typename T>
kernel void twice(device T* out [[buffer(0)]], constant T* in [[buffer(1)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = in[gid] * T(2);
}

// Template arguments deduced from the parameter list: T from `device T*`, N from `constant Shape<N>*`.
template <int N>
struct Shape {
  int dims[N];
};
template <typename T, int N>
kernel void last_dim(device T* out [[buffer(0)]], constant Shape<N>* shape [[buffer(1)]],
                     uint gid [[thread_position_in_grid]]) {
  out[gid] = T(shape->dims[N - 1]);
}
}  // namespace inner
}  // namespace outer

// A globally qualified name after the return type (PyTorch's registration macros write `kernel void ::c10::...`).
template [[host_name("twice_float")]] kernel void ::outer::inner::twice<float>(device float* out,
                                                                               constant float* in, uint gid);
template [[host_name("twice_int")]] kernel void ::outer::inner::twice<int>(device int*, constant int*, uint);

template [[host_name("last_dim_2")]] [[kernel]] void outer::inner::last_dim(
    device float* out [[buffer(0)]], constant outer::inner::Shape<2>* shape [[buffer(1)]],
    uint gid [[thread_position_in_grid]]);

// Two kernel templates with one name (overloads), told apart by their template parameter lists.
template <typename T>
kernel void fill(device T* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = T(1);
}
template <typename T, int V>
kernel void fill(device T* out [[buffer(0)]], constant T& add [[buffer(1)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = T(V) + add;
}
template [[host_name("fill_one")]] kernel void fill<float>(device float*, uint);
template [[host_name("fill_seven")]] kernel void fill<float, 7>(device float*, constant float&, uint);
