// MLX's logsumexp kernels (logsumexp.h from the mlx-metal wheel, included unmodified) under the host names
// mlx/backend/metal/logsumexp.cpp asks for: "block_" when one threadgroup holds a row, "looped_" above 4096.
// MLX has no log-softmax kernel: its log_softmax is x - logsumexp(x) (this kernel, then a broadcasting subtract).
#include <metal_simdgroup>

using namespace metal;

#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/logsumexp.h"

// clang-format off
instantiate_kernel("block_logsumexp_float32", logsumexp, float)
instantiate_kernel("looped_logsumexp_float32", logsumexp_looped, float)
instantiate_kernel("block_logsumexp_float16", logsumexp, half)
instantiate_kernel("looped_logsumexp_float16", logsumexp_looped, half)
instantiate_kernel("block_logsumexp_bfloat16", logsumexp, bfloat16_t)
instantiate_kernel("looped_logsumexp_bfloat16", logsumexp_looped, bfloat16_t)
// clang-format on
