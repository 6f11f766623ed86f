// The CPU emulator's metal_stdlib: everything a kernel translation unit sees.
// The Python transform includes this first, then poisons `double`, then appends the kernel's source.
#pragma once

#include "types.h"
#include "math.h"
#include "atomic.h"
#include "runtime.h"
#include "simd.h"
#include "simdgroup_matrix.h"
#include "intrinsics.h"
