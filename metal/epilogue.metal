// Bias + activation epilogue of a Linear or convolution: out = act(x + bias), bias broadcast along one dimension.
//
//   bias_act_rows      x viewed as (rows, cols), bias[cols]: a Linear's output (bias along the last dimension).
//   bias_act_channels  x viewed as (outer * C, inner), bias[C]: bias along an inner dimension, e.g. dim 1 of a
//                      convolution's NCHW output (inner = H * W); row r takes bias[r % C].
//
// Both use a 2-D grid: x covers one row, N_READS consecutive elements per thread (contiguous runs, so a SIMD group
// reads one contiguous span), y the rows; a thread finds its bias element without dividing (rows) or with one
// modulo (channels). The bias is computed in fp32 together with the activation and rounded once on store.
// Memory traffic per element: one read of x, one write of out, plus the bias (cols or C elements, cached), the
// minimum for an epilogue that is not fused into the matmul or convolution itself.
// The activation functors (and their accuracy notes) come from metal/activations.metal.
#include <metal_stdlib>
using namespace metal;

#define MPSK_ACTIVATION_FUNCTIONS_ONLY
#include "activations.metal"
#undef MPSK_ACTIVATION_FUNCTIONS_ONLY

// x and out are (rows, cols); grid (ceil(cols / N_READS), rows).
template <typename T, typename Op, int N_READS>
[[kernel]] void bias_act_rows(
    const device T* x [[buffer(0)]],
    const device T* bias [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant uint& cols [[buffer(3)]],
    uint2 tid [[thread_position_in_grid]]) {
  const uint col = tid.x * N_READS;
  const uint row_start = tid.y * cols;  // x has fewer than 2^32 elements (the host checks)
  for (int i = 0; i < N_READS; i++) {
    const uint j = col + i;
    if (j < cols) {
      out[row_start + j] = T(Op::apply(float(x[row_start + j]) + float(bias[j])));
    }
  }
}

// x and out are (outer * channels, inner); grid (ceil(inner / N_READS), outer * channels).
template <typename T, typename Op, int N_READS>
[[kernel]] void bias_act_channels(
    const device T* x [[buffer(0)]],
    const device T* bias [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant uint& inner [[buffer(3)]],
    constant uint& channels [[buffer(4)]],
    uint2 tid [[thread_position_in_grid]]) {
  const uint col = tid.x * N_READS;
  const uint row_start = tid.y * inner;
  const float b = float(bias[tid.y % channels]);
  for (int i = 0; i < N_READS; i++) {
    const uint j = col + i;
    if (j < inner) {
      out[row_start + j] = T(Op::apply(float(x[row_start + j]) + b));
    }
  }
}

// Host names: bias_act_<act>_<dtype> and bias_act_channels_<act>_<dtype>.
#define INSTANTIATE_BIAS_ACT(act, Op, name, T)                                                            \
  template [[host_name("bias_act_" #act "_" #name)]] [[kernel]] decltype(bias_act_rows<T, Op, 4>)        \
      bias_act_rows<T, Op, 4>;                                                                            \
  template [[host_name("bias_act_channels_" #act "_" #name)]] [[kernel]]                                  \
      decltype(bias_act_channels<T, Op, 4>) bias_act_channels<T, Op, 4>;

#define INSTANTIATE_BIAS_ACT_ALL_TYPES(act, Op)  \
  INSTANTIATE_BIAS_ACT(act, Op, float32, float)  \
  INSTANTIATE_BIAS_ACT(act, Op, float16, half)   \
  INSTANTIATE_BIAS_ACT(act, Op, bfloat16, bfloat)

INSTANTIATE_BIAS_ACT_ALL_TYPES(none, Identity)
INSTANTIATE_BIAS_ACT_ALL_TYPES(relu, Relu)
INSTANTIATE_BIAS_ACT_ALL_TYPES(relu6, Relu6)
INSTANTIATE_BIAS_ACT_ALL_TYPES(sigmoid, Sigmoid)
INSTANTIATE_BIAS_ACT_ALL_TYPES(tanh, Tanh)
INSTANTIATE_BIAS_ACT_ALL_TYPES(silu, Silu)
INSTANTIATE_BIAS_ACT_ALL_TYPES(gelu, Gelu)
INSTANTIATE_BIAS_ACT_ALL_TYPES(gelu_tanh, GeluTanh)
INSTANTIATE_BIAS_ACT_ALL_TYPES(mish, Mish)
INSTANTIATE_BIAS_ACT_ALL_TYPES(hardswish, HardSwish)
