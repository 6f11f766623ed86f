// Conformance: the ways real Metal libraries declare kernels: explicit instantiation through a macro with
// concatenated host names, a typedef'd decltype, the full signature, implicit buffer indices, namespaces.
#include <metal_stdlib>
using namespace metal;

template <typename T>
[[kernel]] void scale_add(const device T* x [[buffer(0)]], device T* out [[buffer(1)]],
                          constant float& alpha [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = T(float(x[gid]) * alpha + 1.0f);
}

// Macro style with a stringised type and adjacent literals: host names scale_add_float, scale_add_half, ...
#define INSTANTIATE_SCALE_ADD(tname, T) \
  template [[host_name("scale_add" "_" #tname)]] [[kernel]] decltype(scale_add<T>) scale_add<T>;

INSTANTIATE_SCALE_ADD(float, float)
INSTANTIATE_SCALE_ADD(half, half)
INSTANTIATE_SCALE_ADD(bfloat, bfloat)

template <typename T, int N>
kernel void sum_n(const device T* x [[buffer(0)]], device float* out [[buffer(1)]],
                  uint gid [[thread_position_in_grid]]) {
  float s = 0.0f;
  for (int i = 0; i < N; ++i) s += float(x[gid * N + i]);
  out[gid] = s;
}

// typedef'd decltype style.
typedef decltype(sum_n<float, 3>) sum_n_float3_t;
template [[host_name("sum3_float")]] kernel sum_n_float3_t sum_n<float, 3>;

// Full-signature style, parameters without names or attributes.
template [[host_name("sum2_half")]] [[kernel]] void sum_n<half, 2>(const device half*, device float*, uint);

// Implicit buffer indices: x -> buffer(0), out -> buffer(1), factor -> buffer(2).
kernel void implicit_indices(const device float* x, device float* out, constant float& factor,
                             uint gid [[thread_position_in_grid]]) {
  out[gid] = x[gid] * factor;
}

// Mixed: `out` takes buffer(0) explicitly, the others take the lowest free indices in order (1, 2).
kernel void mixed_indices(const device float* a, device float* out [[buffer(0)]], const device float* b,
                          uint gid [[thread_position_in_grid]]) {
  out[gid] = a[gid] - b[gid];
}

namespace ops {
namespace detail {
inline float twice(float v) { return 2.0f * v; }
}  // namespace detail

template <typename T>
kernel void doubled(const device T* x [[buffer(0)]], device T* out [[buffer(1)]],
                    uint gid [[thread_position_in_grid]]) {
  out[gid] = T(detail::twice(float(x[gid])));
}
template [[host_name("doubled_float")]] kernel decltype(doubled<float>) doubled<float>;
}  // namespace ops

// A plain (non-template) kernel's host name is its function name.
kernel void plain_kernel(device int* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = int(gid) * 7;
}

// Program-scope constant tables and MLX-style limits: `static const constant` members of a class template.
constant float lut[4] = {0.5f, 1.5f, 2.5f, 3.5f};
constant int2 pairs[2] = {int2(1, 2), int2(3, 4)};

template <typename U>
struct Limits {
  static const constant U max = metal::numeric_limits<U>::max();
  static const constant U min = metal::numeric_limits<U>::lowest();
};

// Helpers taking pointers and references in each address space.
inline void accumulate(thread float& acc, const device float* p, uint n) {
  for (uint i = 0; i < n; ++i) acc += p[i];
}
inline float first_of(const threadgroup float* p) { return p[0]; }
inline float first_of_constant(constant float* p) { return p[0]; }

template <typename T>
kernel void language_features(const device float* x [[buffer(0)]], device float* out [[buffer(1)]],
                              uint gid [[thread_position_in_grid]],
                              uint lid [[thread_position_in_threadgroup]] [[maybe_unused]]) {
  threadgroup float stage[4];
  stage[0] = 42.0f;
  float acc = 0.0f;
  accumulate(acc, x, 4);
  out[6 * gid] = acc;
  out[6 * gid + 1] = lut[gid % 4];
  out[6 * gid + 2] = float(pairs[gid % 2].y);
  out[6 * gid + 3] = float(Limits<T>::max);
  out[6 * gid + 4] = float(Limits<T>::min);
  out[6 * gid + 5] = first_of(stage) + first_of_constant(lut);
}
template [[host_name("language_features_half")]] [[kernel]] decltype(language_features<half>) language_features<half>;
template [[host_name("language_features_int")]] [[kernel]] decltype(language_features<int>) language_features<int>;
