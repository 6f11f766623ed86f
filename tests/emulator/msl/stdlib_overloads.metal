// Conformance: the shim's namespace metal holds what Apple's <metal_stdlib> holds and no more, so code may add
// what the real one lacks: MLX defines metal::void_t (steel/utils/type_traits.h) and the bfloat math functions
// in metal, metal::fast and metal::precise (bf16_math.h). Float math takes integer arguments (precise::log(10)),
// vector math keeps its vector overloads (exp(float4)), and half converts implicitly to bool.
#include <metal_stdlib>

namespace metal {
template <typename... Ts> struct make_void { typedef void type; };
template <typename... Ts> using void_t = typename make_void<Ts...>::type;

// As MLX writes them: bfloat in, bfloat out, computed in float through the intrinsic.
#define DEFINE_BF16_MATH(mfast)                                                        \
  METAL_FUNC bfloat exp(bfloat x) { return static_cast<bfloat>(__metal_exp(static_cast<float>(x), mfast)); } \
  METAL_FUNC bfloat abs(bfloat x) { return static_cast<bfloat>(__metal_fabs(static_cast<float>(x), mfast)); }
DEFINE_BF16_MATH(__METAL_MAYBE_FAST_MATH__)
namespace fast { DEFINE_BF16_MATH(__METAL_FAST_MATH__) }
namespace precise { DEFINE_BF16_MATH(__METAL_PRECISE_MATH__) }
#undef DEFINE_BF16_MATH
}  // namespace metal

template <typename T, typename = void> struct has_value_type { static constexpr constant bool value = false; };
template <typename T> struct has_value_type<T, metal::void_t<typename T::value_type>> {
  static constexpr constant bool value = true;
};

struct with_value_type { using value_type = int; };

using namespace metal;

// out[7 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void stdlib_overloads(const device float* xs [[buffer(0)]], device float* out [[buffer(1)]],
                             uint gid [[thread_position_in_grid]]) {
  const float x = xs[gid];
  device float* o = out + 7 * gid;
  const bfloat b = bfloat(x);
  o[0] = float(metal::exp(b)) + float(fast::abs(b)) + float(precise::exp(b));
  o[1] = precise::log(10) + metal::sqrt(int(gid) + 1) + pow(2, 3);
  const float4 e = exp(float4(x, 0.0f, 1.0f, -x));
  o[2] = e.x + e.y + e.z + e.w;
  o[3] = float(has_value_type<with_value_type>::value) + 2.0f * float(has_value_type<float>::value);
  o[4] = metal::max(x, 0.5f) + float(metal::min(int(gid), 3));
  o[5] = float(fmax(half(x), half(-1.0f)));
  bool use = true;
  use = half(gid % 3);  // half -> bool, as PyTorch's decode attention assigns a half mask (Metal 3.2)
  o[6] = use ? 1.0f : 0.0f;
}
