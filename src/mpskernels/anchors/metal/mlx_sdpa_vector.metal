// MLX's decode attention (sdpa_vector.h from the mlx-metal wheel, included unmodified): the one-pass kernel, the
// two passes of the split-K kernel and its GQA variant, for head dims 64 and 128. Host names as
// mlx/backend/metal/scaled_dot_product_attention.cpp (sdpa_vector, sdpa_vector_2pass) builds them.
#include <metal_stdlib>

#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/sdpa_vector.h"

using namespace metal;

#define mpsk_sdpa_vector(type, d)                                                              \
  instantiate_kernel("sdpa_vector_" #type "_" #d "_" #d, sdpa_vector, type, d, d)               \
  instantiate_kernel("sdpa_vector_2pass_1_" #type "_" #d "_" #d, sdpa_vector_2pass_1, type, d, d) \
  instantiate_kernel("sdpa_vector_2pass_2_" #type "_" #d, sdpa_vector_2pass_2, type, d)

// The GQA first pass: 8 query heads per KV head; HPT query heads per simdgroup (8 at D 64, 4 at D 128).
#define mpsk_sdpa_vector_gqa(type, d, hpt) \
  instantiate_kernel("sdpa_vector_2pass_1_gqa_" #type "_" #d "_" #d, sdpa_vector_2pass_1_gqa, type, d, d, 8, hpt)

#define mpsk_sdpa_vector_type(type) \
  mpsk_sdpa_vector(type, 64)        \
  mpsk_sdpa_vector(type, 128)       \
  mpsk_sdpa_vector_gqa(type, 64, 8) \
  mpsk_sdpa_vector_gqa(type, 128, 4)

// clang-format off
mpsk_sdpa_vector_type(float)
mpsk_sdpa_vector_type(float16_t)
mpsk_sdpa_vector_type(bfloat16_t)
// clang-format on
