// PyTorch's SDPA decode kernels (sdpa_vector, sdpa_vector_2pass_1, sdpa_vector_2pass_2), read from the installed
// torch. DecodeAttention.h instantiates every (dtype, head dim, mask) variant itself at its bottom, under the host
// names Attention.mm asks for, so this file only sets up what PyTorch's own Attention.metal sets up before it.
#include <c10/metal/utils.h>
#include <metal_simdgroup>
#include <metal_stdlib>

using namespace metal;

#include <ATen/native/mps/kernels/DecodeAttention.h>
