// Conformance: clang extensions Apple's compiler accepts and real Metal code uses -- an explicit specialisation
// inside a class (MLX's steel headers) and a GNU array-range initialiser. The emulator compiles with clang++ for
// these; with g++ they are compile errors (docs/emulator.md, "Compiler").
#include <metal_stdlib>
using namespace metal;

struct tile {
  template <int K> struct weight { static constexpr constant float value = float(K); };
  template <> struct weight<0> { static constexpr constant float value = -1.0f; };
};

// out[3 * gid + k]: the values listed in test_conformance_stdlib.py.
kernel void stdlib_clang(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  float table[8] = {[0 ... 7] = 2.5f};
  table[gid % 8] = 0.0f;
  device float* o = out + 3 * gid;
  o[0] = tile::weight<0>::value + tile::weight<3>::value;
  float s = 0.0f;
  for (int i = 0; i < 8; ++i) s += table[i];
  o[1] = s;
  o[2] = table[(gid + 1) % 8];
}
