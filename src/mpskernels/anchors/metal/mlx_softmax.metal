// MLX's softmax kernels (softmax.h from the mlx-metal wheel, included unmodified), instantiated under the host
// names MLX's host code asks for (mlx/backend/metal/softmax.cpp): "block_" (one threadgroup holds a row) and
// "looped_" (rows longer than 4096), each with AccT = T, and the "precise_" ones that accumulate half and bfloat
// in float.
#include <metal_common>
#include <metal_simdgroup>

using namespace metal;

#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/softmax.h"

// clang-format off
instantiate_kernel("block_softmax_float32", softmax_single_row, float)
instantiate_kernel("looped_softmax_float32", softmax_looped, float)
instantiate_kernel("block_softmax_float16", softmax_single_row, half)
instantiate_kernel("looped_softmax_float16", softmax_looped, half)
instantiate_kernel("block_softmax_bfloat16", softmax_single_row, bfloat16_t)
instantiate_kernel("looped_softmax_bfloat16", softmax_looped, bfloat16_t)
instantiate_kernel("block_softmax_precise_float16", softmax_single_row, half, float)
instantiate_kernel("looped_softmax_precise_float16", softmax_looped, half, float)
instantiate_kernel("block_softmax_precise_bfloat16", softmax_single_row, bfloat16_t, float)
instantiate_kernel("looped_softmax_precise_bfloat16", softmax_looped, bfloat16_t, float)
// clang-format on
