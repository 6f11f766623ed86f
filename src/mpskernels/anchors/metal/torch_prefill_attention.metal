// PyTorch's flash-attention prefill kernel (prefill_attention), read from the installed torch.
// PrefillAttention.h instantiates every (dtype, block shape, mask, causal) variant itself at its bottom, under the
// host names Attention.mm asks for, so this file only sets up what PyTorch's own Attention.metal sets up before it.
#include <c10/metal/utils.h>
#include <metal_simdgroup>
#include <metal_stdlib>

using namespace metal;

#include <ATen/native/mps/kernels/PrefillAttention.h>
