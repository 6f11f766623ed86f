// Bias + activation epilogue of a Linear or convolution: out = act(x + bias), bias broadcast along one dimension.
//
//   bias_act_rows      x viewed as (rows, cols), bias[cols]: a Linear's output (bias along the last dimension).
//   bias_act_channels  x viewed as (outer * C, inner), bias[C]: bias along an inner dimension, e.g. dim 1 of a
//                      convolution's NCHW output (inner = H * W); row r takes bias[r % C].
//
// Both use a 2-D grid: x covers one row, one 16-byte chunk per thread (metal/chunk_io.h: 4 floats or 8 halves /
// bfloats; consecutive threads take consecutive chunks, so a SIMD group moves one contiguous span), y the rows; a
// thread finds its bias element without dividing (rows) or with one modulo (channels). Whole chunks of rows whose
// buffers are 16-byte aligned move as single 16-byte loads and stores; a row's last partial chunk, or a row that
// is not aligned (an odd column count, a storage offset), goes element by element with a guard on each.
// Threadgroups of 256 threads (the host's GROUP, spread over rows when a row needs fewer), as the activations.
// The bias is computed in fp32 together with the activation and rounded once on store.
// Memory traffic per element: one read of x, one write of out, plus the bias (cols or C elements, cached), the
// minimum for an epilogue that is not fused into the matmul or convolution itself. One chunk per thread, no loop:
// the fp32 `none`-like cases already run near copy bandwidth, so what limits the others is math per element.
// The activation functors (and their accuracy notes and operation counts) come from metal/activations.metal;
// ForOutput gives 16-bit outputs each functor's Low form (fast exp / divide, GELU's degree-5 normal tail), and
// GELU no longer branches (it diverged within SIMD groups on ordinary data, paying for both of erf's regimes).
// Before (the anchor lane on an NVIDIA H200, not an Apple GPU; % of the lane's copy bandwidth, 4246 GB/s, for the
// minimum bytes, bf16 / fp16 / fp32): rows 4096 x 11008 gelu 35 / 39 / 67; channels 8 x 320 x 64 x 64 silu
// 59 / 68 / 86. Now (H100 lane, full run at f11f7ae, docs/anchor-lane.md): rows 92 / 92 / 84; channels fp32 92
// (the 16-bit channel case fits the L2).
#include <metal_stdlib>
using namespace metal;

#define MPSK_ACTIVATION_FUNCTIONS_ONLY
#include "activations.metal"
#undef MPSK_ACTIVATION_FUNCTIONS_ONLY

// out[j] = act(x[j] + bias[j]) over chunk c of an n-element row; the row's buffers aligned: `vec`.
template <typename T, typename Op>
inline void bias_act_chunk(const device T* x, const device T* bias, device T* out, uint c, uint n, bool vec) {
  float v[ChunkOf<T>::N];
  float b[ChunkOf<T>::N];
  load_chunk(x, c, n, vec, v);
  load_chunk(bias, c, n, vec, b);
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    v[i] = ForOutput<Op, T>::type::apply(v[i] + b[i]);
  }
  store_chunk(out, c, n, vec, v);
}

// x and out are (rows, cols); grid (chunks of cols, rows).
template <typename T, typename Op>
[[kernel]] void bias_act_rows(
    const device T* x [[buffer(0)]],
    const device T* bias [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant uint& cols [[buffer(3)]],
    uint2 tid [[thread_position_in_grid]]) {
  const uint row_start = tid.y * cols;  // x has fewer than 2^32 elements (the host checks)
  const bool vec = aligned16(x + row_start) && aligned16(out + row_start) && aligned16(bias);
  bias_act_chunk<T, Op>(x + row_start, bias, out + row_start, tid.x, cols, vec);
}

// x and out are (outer * channels, inner); grid (chunks of inner, outer * channels).
template <typename T, typename Op>
[[kernel]] void bias_act_channels(
    const device T* x [[buffer(0)]],
    const device T* bias [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant uint& inner [[buffer(3)]],
    constant uint& channels [[buffer(4)]],
    uint2 tid [[thread_position_in_grid]]) {
  const uint row_start = tid.y * inner;
  const bool vec = aligned16(x + row_start) && aligned16(out + row_start);
  const float b = float(bias[tid.y % channels]);
  float v[ChunkOf<T>::N];
  load_chunk(x + row_start, tid.x, inner, vec, v);
  for (int i = 0; i < ChunkOf<T>::N; i++) {
    v[i] = ForOutput<Op, T>::type::apply(v[i] + b);
  }
  store_chunk(out + row_start, tid.x, inner, vec, v);
}

// Host names: bias_act_<act>_<dtype> and bias_act_channels_<act>_<dtype>.
#define INSTANTIATE_BIAS_ACT(act, Op, name, T)                                                            \
  template [[host_name("bias_act_" #act "_" #name)]] [[kernel]] decltype(bias_act_rows<T, Op>)           \
      bias_act_rows<T, Op>;                                                                               \
  template [[host_name("bias_act_channels_" #act "_" #name)]] [[kernel]]                                  \
      decltype(bias_act_channels<T, Op>) bias_act_channels<T, Op>;

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
