// MLX's matrix-vector kernels (gemv.h from the mlx-metal wheel, included unmodified), unbatched and without the
// axpby epilogue, for every tile mlx/backend/metal/matmul.cpp (gemv_axbpy) picks: "gemv" when the matrix rows are
// the outputs (x @ W.T with W row-major), "gemv_t" when its columns are (x @ W).
#include <metal_simdgroup>
#include <metal_stdlib>

#include "mlx/backend/metal/kernels/gemv.h"

using namespace metal;

#define mpsk_gemv(kind, tname, type, bm, bn, sm, sn, tm, tn)                                                \
  instantiate_kernel(#kind "_" #tname "_bm" #bm "_bn" #bn "_sm" #sm "_sn" #sn "_tm" #tm "_tn" #tn "_nc0_axpby0", \
                     kind, type, bm, bn, sm, sn, tm, tn, false, false)

#define mpsk_gemv_type(tname, type)                    \
  mpsk_gemv(gemv, tname, type, 4, 1, 1, 32, 4, 4)      \
  mpsk_gemv(gemv, tname, type, 4, 1, 1, 32, 1, 4)      \
  mpsk_gemv(gemv, tname, type, 8, 1, 1, 32, 4, 4)      \
  mpsk_gemv(gemv, tname, type, 1, 1, 8, 4, 4, 4)       \
  mpsk_gemv(gemv, tname, type, 1, 1, 8, 4, 1, 4)       \
  mpsk_gemv(gemv, tname, type, 1, 8, 1, 32, 4, 4)      \
  mpsk_gemv(gemv, tname, type, 1, 8, 1, 32, 1, 4)      \
  mpsk_gemv(gemv_t, tname, type, 1, 2, 8, 4, 4, 1)     \
  mpsk_gemv(gemv_t, tname, type, 1, 2, 8, 4, 4, 4)     \
  mpsk_gemv(gemv_t, tname, type, 1, 4, 8, 4, 4, 4)     \
  mpsk_gemv(gemv_t, tname, type, 1, 16, 8, 4, 4, 4)    \
  mpsk_gemv(gemv_t, tname, type, 1, 16, 4, 8, 4, 4)

// clang-format off
mpsk_gemv_type(float32, float)
mpsk_gemv_type(float16, half)
mpsk_gemv_type(bfloat16, bfloat16_t)
// clang-format on
