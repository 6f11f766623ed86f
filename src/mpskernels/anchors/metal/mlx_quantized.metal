// MLX's affine 4-bit matrix-vector kernels (quantized.h from the mlx-metal wheel, included unmodified), group size
// 64, unbatched: the "qmv_fast" kernel for outputs a multiple of 8 and inputs a multiple of 512, and the guarded
// "qmv" for the rest, under the names mlx/backend/metal/quantized.cpp (qmv) builds; and its tiled matrix-matrix
// kernel with transposed weights, affine_qmm_t (outputs a multiple of 32 or not), under the names qmm builds.
#include <metal_simdgroup>
#include <metal_stdlib>

#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/steel/gemm/gemm.h"
#include "mlx/backend/metal/kernels/quantized_utils.h"
#include "mlx/backend/metal/kernels/quantized.h"

#define mpsk_qmv(type)                                                                                  \
  instantiate_kernel("affine_qmv_fast_" #type "_gs_64_b_4_batch_0", affine_qmv_fast, type, 64, 4, false) \
  instantiate_kernel("affine_qmv_" #type "_gs_64_b_4_batch_0", affine_qmv, type, 64, 4, false)       \
  instantiate_kernel("affine_qmm_t_" #type "_gs_64_b_4_alN_true_batch_0", affine_qmm_t, type, 64, 4, true, false) \
  instantiate_kernel("affine_qmm_t_" #type "_gs_64_b_4_alN_false_batch_0", affine_qmm_t, type, 64, 4, false, false)

// clang-format off
mpsk_qmv(float)
mpsk_qmv(float16_t)
mpsk_qmv(bfloat16_t)
// clang-format on
