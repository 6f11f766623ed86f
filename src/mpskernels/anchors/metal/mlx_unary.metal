// MLX's contiguous unary kernels (unary.h with unary_ops.h, from the mlx-metal wheel, included unmodified) for the
// ops MLX's activation chains are built from: Sigmoid (SiLU = x * sigmoid(x)), Erf (exact GELU), Exp.
// Host names as mlx/backend/metal/unary.cpp builds them: "v_" runs one element per thread (inputs below 2^16
// elements), "vn_" runs WorkPerThread<T> elements per thread with a guarded tail.
#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/unary_ops.h"
#include "mlx/backend/metal/kernels/unary.h"

#define mpsk_unary(op, tname, type)                                     \
  instantiate_kernel("v_" #op #tname #tname, unary_v, type, type, op, 1) \
  instantiate_kernel("vn_" #op #tname #tname, unary_v, type, type, op)

#define mpsk_unary_floats(op)         \
  mpsk_unary(op, float32, float)      \
  mpsk_unary(op, float16, half)       \
  mpsk_unary(op, bfloat16, bfloat16_t)

// clang-format off
mpsk_unary_floats(Sigmoid)
mpsk_unary_floats(Erf)
mpsk_unary_floats(Exp)
// clang-format on
