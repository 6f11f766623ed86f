// Element-wise activations: out[i] = act(x[i]).
//
// Each thread handles N_READS consecutive elements (contiguous reads and writes a SIMD group coalesces), computes in
// fp32 and rounds once on store. Memory traffic per element: one read, one write (the minimum).
#include <metal_stdlib>
using namespace metal;

struct Silu {
  static float apply(float x) { return x / (1.0f + metal::precise::exp(-x)); }
};

template <typename T, typename Op, int N_READS>
[[kernel]] void unary(
    const device T* x [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant uint& size [[buffer(2)]],
    uint tid [[thread_position_in_grid]]) {
  const uint base = tid * N_READS;
  for (int i = 0; i < N_READS; i++) {
    if (base + i < size) {
      out[base + i] = T(Op::apply(float(x[base + i])));
    }
  }
}

// Host names: <op>_<dtype>.
#define INSTANTIATE_UNARY(op, Op, name, T) \
  template [[host_name(#op "_" #name)]] [[kernel]] decltype(unary<T, Op, 4>) unary<T, Op, 4>;

#define INSTANTIATE_UNARY_ALL_TYPES(op, Op)     \
  INSTANTIATE_UNARY(op, Op, float32, float)     \
  INSTANTIATE_UNARY(op, Op, float16, half)      \
  INSTANTIATE_UNARY(op, Op, bfloat16, bfloat)

INSTANTIATE_UNARY_ALL_TYPES(silu, Silu)
