// Rotary position embedding (RoPE) applied to q and k in one dispatch, with the cos/sin tables the model computed.
//
// For a head row x (head_dim elements) of the token at position p, with c = cos[p] and s = sin[p] (rotary_dim
// elements each), the first rotary_dim elements rotate in pairs (i0, i1) and the rest pass through unchanged:
//   out[i0] = x[i0] * c[i0] - x[i1] * s[i0]
//   out[i1] = x[i1] * c[i1] + x[i0] * s[i1]
// Half-split layout (GPT-NeoX, LLaMA: rotate_half): i0 = j, i1 = j + rotary_dim / 2.
// Interleaved layout (GPT-J: rotate_every_two):   i0 = 2j, i1 = 2j + 1.
// That is exactly HF's `x * cos + rotate_half(x) * sin` element by element, whatever the tables hold.
//
// Grid: x = one unit per pair (rotary_dim / 2 units) then one unit per two pass-through elements; y = a block of
// heads_per_thread heads, counting q's heads first, then k's; z = the token (b * seq + s). A thread loads its four
// table values once (in fp32) and applies them to every head of its block (the host picks 4 heads per thread for
// large inputs, 1 for decode-sized ones to keep enough threads). The table row is position_ids[b, s] when given
// (ids outside [0, table_rows) are clamped so a bad id cannot read out of bounds), else offset + s; a table may
// carry a batch dimension (cos_batch_stride = table_rows * rotary_dim) or be shared across the batch (stride 0).
// The position source is a kernel variant rather than a function constant, so each variant binds only the buffers
// it reads: rope_<dtype> (offset), rope_ids32_<dtype> and rope_ids64_<dtype> (int32 / int64 ids as buffer 16).
// The layout is the function constant `interleaved`.
// Memory traffic per element of q and k: one read, one write (the minimum). The tables add two reads per rotated
// element per block of heads_per_thread heads (a cache hit after the first block of a token); position ids one
// read per thread. Math in fp32, rounded once on store.
#include <metal_stdlib>
using namespace metal;

constant bool interleaved [[function_constant(0)]];

// Sizes shared by the kernel variants.
struct RopeDims {
  uint q_heads;
  uint k_heads;
  uint seq;
  uint head_dim;
  uint rotary_dim;
  uint cos_batch_stride;
  uint heads_per_thread;
};

// A position id as a table row, clamped into [0, rows) so that a bad id cannot read outside the table.
inline uint table_row(long id, uint rows) {
  return id < 0 ? 0u : (id >= long(rows) ? rows - 1 : uint(id));
}

// The work of one thread: unit gid.x of the head rows of token (b, s) in heads [gid.y * heads_per_thread, ...),
// with the tables' row pos.
template <typename T, typename CT>
inline void rope_unit(
    const device T* q, const device T* k, const device CT* cos_table, const device CT* sin_table,
    device T* q_out, device T* k_out, RopeDims d, uint3 gid, uint b, uint s, uint pos) {
  const uint unit = gid.x;
  const uint half_rot = d.rotary_dim / 2;
  const uint head_begin = gid.y * d.heads_per_thread;
  const uint head_end = min(head_begin + d.heads_per_thread, d.q_heads + d.k_heads);

  if (unit < half_rot) {
    const uint i0 = interleaved ? 2 * unit : unit;
    const uint i1 = interleaved ? 2 * unit + 1 : unit + half_rot;
    const size_t row = size_t(b) * d.cos_batch_stride + size_t(pos) * d.rotary_dim;
    const float c0 = float(cos_table[row + i0]);
    const float c1 = float(cos_table[row + i1]);
    const float s0 = float(sin_table[row + i0]);
    const float s1 = float(sin_table[row + i1]);

    for (uint h = head_begin; h < head_end; h++) {
      const bool is_q = h < d.q_heads;
      const size_t base = is_q ? ((size_t(b) * d.q_heads + h) * d.seq + s) * d.head_dim
                               : ((size_t(b) * d.k_heads + (h - d.q_heads)) * d.seq + s) * d.head_dim;
      const device T* x = (is_q ? q : k) + base;
      device T* out = (is_q ? q_out : k_out) + base;
      const float x0 = float(x[i0]);
      const float x1 = float(x[i1]);
      out[i0] = T(x0 * c0 - x1 * s0);
      out[i1] = T(x1 * c1 + x0 * s1);
    }
  } else {
    // Pass-through columns of a partial rotary (rotary_dim < head_dim), two per thread.
    const uint j = d.rotary_dim + 2 * (unit - half_rot);
    for (uint h = head_begin; h < head_end; h++) {
      const bool is_q = h < d.q_heads;
      const size_t base = is_q ? ((size_t(b) * d.q_heads + h) * d.seq + s) * d.head_dim
                               : ((size_t(b) * d.k_heads + (h - d.q_heads)) * d.seq + s) * d.head_dim;
      const device T* x = (is_q ? q : k) + base;
      device T* out = (is_q ? q_out : k_out) + base;
      out[j] = x[j];
      if (j + 1 < d.head_dim) {
        out[j + 1] = x[j + 1];
      }
    }
  }
}

#define ROPE_COMMON_PARAMS                                  \
  const device T* q [[buffer(0)]],                          \
  const device T* k [[buffer(1)]],                          \
  const device CT* cos_table [[buffer(2)]],                 \
  const device CT* sin_table [[buffer(3)]],                 \
  device T* q_out [[buffer(4)]],                            \
  device T* k_out [[buffer(5)]],                            \
  constant uint& q_heads [[buffer(6)]],                     \
  constant uint& k_heads [[buffer(7)]],                     \
  constant uint& seq [[buffer(8)]],                         \
  constant uint& head_dim [[buffer(9)]],                    \
  constant uint& rotary_dim [[buffer(10)]],                 \
  constant uint& table_rows [[buffer(11)]],                 \
  constant uint& cos_batch_stride [[buffer(12)]],           \
  constant uint& positions_batch_stride [[buffer(13)]],     \
  constant uint& offset [[buffer(14)]],                     \
  constant uint& heads_per_thread [[buffer(15)]]

// Positions offset + s (decoding from a table, or HF's per-token tables with offset 0).
template <typename T, typename CT>
[[kernel]] void rope(ROPE_COMMON_PARAMS, uint3 gid [[thread_position_in_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  rope_unit<T, CT>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, offset + s);
}

// Positions from position_ids[b * positions_batch_stride + s] (int or long).
template <typename T, typename CT, typename IdT>
[[kernel]] void rope_ids(ROPE_COMMON_PARAMS, const device IdT* positions [[buffer(16)]],
                         uint3 gid [[thread_position_in_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  const uint pos = table_row(long(positions[b * positions_batch_stride + s]), table_rows);
  rope_unit<T, CT>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, pos);
}

// Host names: rope[_ids32|_ids64][_f32tables]_<dtype>; _f32tables reads float32 tables with half or bfloat q, k.
#define INSTANTIATE_ROPE(tables, name, T, CT)                                                         \
  template [[host_name("rope" tables "_" #name)]] [[kernel]] decltype(rope<T, CT>) rope<T, CT>;      \
  template [[host_name("rope_ids32" tables "_" #name)]] [[kernel]] decltype(rope_ids<T, CT, int>)   \
      rope_ids<T, CT, int>;                                                                           \
  template [[host_name("rope_ids64" tables "_" #name)]] [[kernel]] decltype(rope_ids<T, CT, long>)  \
      rope_ids<T, CT, long>;

INSTANTIATE_ROPE("", float32, float, float)
INSTANTIATE_ROPE("", float16, half, half)
INSTANTIATE_ROPE("", bfloat16, bfloat, bfloat)
INSTANTIATE_ROPE("_f32tables", float16, half, float)
INSTANTIATE_ROPE("_f32tables", bfloat16, bfloat, float)
