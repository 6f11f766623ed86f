// What a Metal translation unit translated to CUDA sees in place of <metal_stdlib>: MSL types, math, barriers,
// SIMD-group functions, simdgroup matrices and the parameter binding of the generated entries.
#pragma once

#include "types.cuh"
#include "traits.cuh"
#include "math.cuh"
#include "integer.cuh"
#include "simd.cuh"
#include "matrix.cuh"
#include "intrinsics.cuh"
#include "atomic.cuh"
#include "dispatch.cuh"
