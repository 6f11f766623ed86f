// MLX's binary kernels (binary.h with binary_ops.h, from the mlx-metal wheel, included unmodified) for Add,
// Subtract, Multiply and Divide. Host names as mlx/backend/metal/binary.cpp builds them: "vv"/"sv"/"vs" for two
// contiguous operands / a scalar and a contiguous one (one element per thread below 2^16 elements, "…n" with
// WorkPerThread<T> elements per thread and a guarded tail above), "g1"/"g2"/"g3" for broadcast operands of up to
// three collapsed dimensions with 32-bit indexing.
#include <metal_integer>
#include <metal_math>

#include "mlx/backend/metal/kernels/defines.h"
#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/binary_ops.h"
#include "mlx/backend/metal/kernels/binary.h"

#define mpsk_binary(op, tname, type)                                         \
  instantiate_kernel("vv_" #op #tname, binary_vv, type, type, op, 1)         \
  instantiate_kernel("sv_" #op #tname, binary_sv, type, type, op, 1)         \
  instantiate_kernel("vs_" #op #tname, binary_vs, type, type, op, 1)         \
  instantiate_kernel("vvn_" #op #tname, binary_vv, type, type, op)           \
  instantiate_kernel("svn_" #op #tname, binary_sv, type, type, op)           \
  instantiate_kernel("vsn_" #op #tname, binary_vs, type, type, op)           \
  instantiate_kernel("g1_" #op #tname, binary_g_nd1, type, type, op, int)    \
  instantiate_kernel("g2_" #op #tname, binary_g_nd2, type, type, op, int)    \
  instantiate_kernel("g3_" #op #tname, binary_g_nd3, type, type, op, int)

#define mpsk_binary_floats(op)         \
  mpsk_binary(op, float32, float)      \
  mpsk_binary(op, float16, half)       \
  mpsk_binary(op, bfloat16, bfloat16_t)

// clang-format off
mpsk_binary_floats(Add)
mpsk_binary_floats(Subtract)
mpsk_binary_floats(Multiply)
mpsk_binary_floats(Divide)
// clang-format on
