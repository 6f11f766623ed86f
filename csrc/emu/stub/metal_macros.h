// Macros that Apple's <metal_stdlib> headers define and real kernels use (MLX's bf16_math.h passes
// __METAL_MAYBE_FAST_MATH__ to the __metal_* intrinsics; nearly every MLX helper is METAL_FUNC). They must exist
// at preprocessing time, so every stand-in header includes this file. The values follow Apple's headers: the
// fast-math flag is a bool argument, and Metal compiles with fast math unless told otherwise. The emulator
// computes the precise result either way (docs/emulator.md, "Numerics").
#pragma once
#ifndef METAL_FUNC
#define METAL_FUNC inline
#endif
#ifndef METAL_INTERNAL
#define METAL_INTERNAL
#endif
#ifndef __METAL_FAST_MATH__
#define __METAL_FAST_MATH__ true
#endif
#ifndef __METAL_PRECISE_MATH__
#define __METAL_PRECISE_MATH__ false
#endif
#ifndef __METAL_MAYBE_FAST_MATH__
#define __METAL_MAYBE_FAST_MATH__ __METAL_FAST_MATH__
#endif
