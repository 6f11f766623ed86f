// MLX's prefill attention (steel/attn/kernels/steel_attention.h from the mlx-metal wheel, included unmodified)
// with the tile MLX's host picks on GPUs without NAX (sdpa_full_self_attention_metal in
// mlx/backend/metal/scaled_dot_product_attention.cpp): BQ 32, BK 32 below head dim 128 and 16 at 128, 4 x 1
// simdgroups, V head dim = Q head dim; masks additive (the input type) or boolean.
#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/steel/attn/attn.h"
#include "mlx/backend/metal/kernels/steel/attn/kernels/steel_attention.h"

#define mpsk_attention(tname, type, bk, bd, mname, mtype)                                               \
  instantiate_kernel("steel_attention_" #tname "_bq32_bk" #bk "_bd" #bd "_wm4_wn1_mask" #mname, attention, \
                     type, 32, bk, bd, bd, 4, 1, mtype, float)

#define mpsk_attention_type(tname, type)                 \
  mpsk_attention(tname, type, 32, 64, tname, type)       \
  mpsk_attention(tname, type, 32, 64, bool_, bool)       \
  mpsk_attention(tname, type, 32, 80, tname, type)       \
  mpsk_attention(tname, type, 32, 80, bool_, bool)       \
  mpsk_attention(tname, type, 16, 128, tname, type)      \
  mpsk_attention(tname, type, 16, 128, bool_, bool)

// clang-format off
mpsk_attention_type(float32, float)
mpsk_attention_type(float16, half)
mpsk_attention_type(bfloat16, bfloat16_t)
// clang-format on
