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
// Grid: x = one unit per 16-byte chunk of a head row (metal/chunk_io.h: N = 4 floats or 8 halves / bfloats; see
// rope_unit for the units of each layout), then one unit per chunk of pass-through elements; y = a block of
// heads_per_thread heads, counting q's heads first, then k's; z = the token (b * seq + s). A thread loads its
// table values once (in fp32) and applies them to every head of its block (the host picks 4 heads per thread for
// large inputs, 1 for decode-sized ones to keep enough threads). Whole chunks of rows whose buffers are 16-byte
// aligned move as single 16-byte loads and stores (a 128-wide half-split bf16 head: 8 units, each two 16-byte
// loads and two stores of x, four of the tables); a row's partial chunk, or an unaligned row (an odd rotary half,
// a storage offset), goes element by element with a guard on each. Threadgroups of up to 256 threads (the host's GROUP:
// a power of two along x, then the token's head blocks, then as many tokens as fit in whole SIMD groups, so a
// token with few head blocks does not leave a threadgroup small with a half-empty SIMD group). The table row is position_ids[b, s] when given
// (ids outside [0, table_rows) are clamped so a bad id cannot read out of bounds), else offset + s; a table may
// carry a batch dimension (cos_batch_stride = table_rows * rotary_dim) or be shared across the batch (stride 0).
// The position source is a kernel variant rather than a function constant, so each variant binds only the buffers
// it reads: rope_<dtype> (offset), rope_ids32_<dtype> and rope_ids64_<dtype> (int32 / int64 ids as buffer 16).
// The layout is the function constant `interleaved`.
// Memory traffic per element of q and k: one read, one write (the minimum). The tables add two reads per rotated
// element per block of heads_per_thread heads (a cache hit after the first block of a token); position ids one
// read per thread. Math in fp32, rounded once on store.
//
// Registers (what changed and why). A thread keeps its table chunks across its block of heads. They were held as
// fp32 (32 values for a half-split 16-bit unit: cos and sin of both halves, 8 each), and every kernel was compiled
// for 1024-thread threadgroups; on the NVIDIA lane (benches/lane_registers.py, sm_90) every 16-bit kernel kept
// 8-16 bytes in a stack frame and spilled 8-24 bytes at the 64 registers that bound allows, while fp32 (16 table
// values) fitted; the lane measured 16-bit rope at 62-64% of copy bandwidth against fp32's 95%. Now the tables are
// held as raw bits (metal/chunk_bits.h: 4 registers per 16-byte chunk, converted to fp32 where used), and the
// kernels declare the 256 threads per threadgroup the host launches (GROUP in src/mpskernels/kernels/rope.py),
// which leaves the compiler room for the float32 tables of the _f32tables variants (32 fp32 values, which no
// packing shrinks). Lane after: 0 stack, 0 spill for every kernel and layout (32-71 registers). These are lane
// figures about the code's footprint, not Apple timings. Timed (H100 lane, full run at 91853cf, docs/anchor-lane.md
// then): q 1x32x4096x128 with k 1x8x4096x128 at 76/68/92% of copy bandwidth (bf16/fp16/fp32; the registers of the q
// case's kernels, 53/69/46, follow the same order). Why the order, read from the lane's SASS (benches/lane_registers.py
// --loops rope.metal:rope_bfloat16): the loop over a thread's heads is rolled, each iteration issuing its two 16-byte
// x loads and waiting on them before its stores, so a warp keeps one head's loads in flight and the bytes in flight
// per core follow the warps resident: 256-thread threadgroups at 46/53/69 registers (allocated 48/56/72) fit
// 5/4/3 a core on the lane, 40/32/24 warps, the order of the three figures. Tried and not timed: loading a block's
// 4 heads' x chunks (as raw bits) before rotating the first; to keep the batch in registers the head loop must
// unroll, and ptxas (sm_90, half-split) then gave 89/109/120 registers (fp32/bf16/fp16, from 46/53/69) and a
// 128 B frame in 12 kv_append kernels: fewer warps holding more loads each, with spills. The lighter form here:
// the loop stays rolled and loads head h + 1's x chunks (raw bits) before rotating and storing head h, so a
// thread keeps two heads' loads in flight. ptxas (sm_90, worst over the layouts): rope 46/53/69 -> 57/63/79
// registers (fp32/bf16/fp16), kv_append 53/79/88 -> 59/76/93, f32tables 70-80 -> 80, no frame: on the lane bf16
// and fp16 keep their 4 and 3 threadgroups a core with twice the loads in flight, fp32 drops from 5 to 4.
// Timed side by side (H100 lane, 2026-12-07, main 35e1533 against this change, q 1x32x4096x128 with k 1x8x4096x128):
// bf16 36.9 -> 32.4 us, fp16 41.9 -> 33.5, fp32 61.4 -> 62.1 (the decode rows 2.0-2.5 us either way); fp32 lost
// a threadgroup a core and gained about as much as that cost. The row's minimum bytes (85.6 MB in 16-bit, q, k, out
// and the tables) over B's time and its run's copy bandwidth (3020 GB/s): about 87/85/91% of copy (bf16 87.5, fp16
// 84.6, fp32 91.3). In the full run at f11f7ae (docs/anchor-lane.md): 85/83/91% (bf16/fp16/fp32).
#include <metal_stdlib>
using namespace metal;

#include "chunk_bits.h"

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

// Elements [u * M, u * M + M) of an n-element table row, held as raw bits (metal/chunk_bits.h) while the thread
// applies them to its heads: M = one chunk of the head rows' type (8 for 16-bit q and k, 4 for fp32), which is
// one chunk of a table in q's type and two of a float32 table read with 16-bit q and k (`b` used only then).
struct TableSpan {
  uint4 a;
  uint4 b;
};

template <typename CT, int M>
inline TableSpan load_span(const device CT* p, uint u, uint n, bool vec) {
  constexpr int PER = M / ChunkOf<CT>::N;
  TableSpan t = {load_chunk_bits(p, u * PER, n, vec), uint4(0)};
  if (PER == 2) {
    t.b = load_chunk_bits(p, u * PER + 1, n, vec);
  }
  return t;
}

// The span's M values in fp32, converted where they are used.
template <typename CT, int M>
inline void span_values(TableSpan t, thread float* v) {
  unpack_chunk<CT>(t.a, v);
  if (M / ChunkOf<CT>::N == 2) {
    unpack_chunk<CT>(t.b, v + ChunkOf<CT>::N);
  }
}

// Start of head h's row of token (b, s), q's heads first.
inline size_t head_row(RopeDims d, uint h, uint b, uint s) {
  return h < d.q_heads ? ((size_t(b) * d.q_heads + h) * d.seq + s) * d.head_dim
                       : ((size_t(b) * d.k_heads + (h - d.q_heads)) * d.seq + s) * d.head_dim;
}

// Where rope_kv_append also stores a k head's rotated row: row cache_offset + s of that head in k_cache
// [batch, k_heads, len, head_dim]. rope passes rows = nullptr with APPEND false, and the stores compile away.
template <typename T>
struct KCacheRows {
  device T* rows;
  uint len;
  uint offset;
};

// Start of k head h's (h >= q_heads) cache row for token (b, s).
template <typename T>
inline size_t cache_row(RopeDims d, KCacheRows<T> cache, uint h, uint b, uint s) {
  return ((size_t(b) * d.k_heads + (h - d.q_heads)) * cache.len + cache.offset + s) * d.head_dim;
}

// Unit u of head h's x row as loaded (raw bits, metal/chunk_bits.h): interleaved, chunk u of x[0, R) in `first`;
// half-split, chunk u of x[0, R/2) in `first` and of x[R/2, R) in `second`. `vec`: x's and out's rows are 16-byte
// aligned (both halves, half-split), so whole chunks move as single 16-byte accesses.
struct HeadChunks {
  uint4 first;
  uint4 second;
  bool vec;
};

template <typename T>
inline HeadChunks load_head_chunks(const device T* q, const device T* k, device T* q_out, device T* k_out,
                                   RopeDims d, uint h, uint b, uint s, uint u, uint rot_span, uint half_rot) {
  const size_t base = head_row(d, h, b, s);
  const device T* x = (h < d.q_heads ? q : k) + base;
  const device T* out = (h < d.q_heads ? q_out : k_out) + base;
  HeadChunks c;
  if (interleaved) {
    c.vec = aligned16(x) && aligned16(out);
    c.first = load_chunk_bits(x, u, rot_span, c.vec);
    c.second = uint4(0);
  } else {
    c.vec = aligned16(x) && aligned16(out) && aligned16(x + half_rot) && aligned16(out + half_rot);
    c.first = load_chunk_bits(x, u, half_rot, c.vec);
    c.second = load_chunk_bits(x + half_rot, u, half_rot, c.vec);
  }
  return c;
}

// The work of one thread: unit gid.x (one 16-byte chunk of T, N elements) of the head rows of token (b, s) in heads
// [gid.y * heads_per_thread, ...), with the tables' row pos. Units along a row:
//   half-split:  unit u < ceil(R / 2 / N) rotates pairs j = u * N + i: chunk u of x[0, R/2) and of x[R/2, R);
//   interleaved: unit u < ceil(R / N) rotates the N / 2 pairs in chunk u of x[0, R);
//   then pass-through units: chunk u of x[R, head_dim), copied.
// Whole chunks at 16-byte aligned addresses (checked per row and table row) are single vector accesses.
// APPEND (rope_kv_append): each k head's chunk, once stored to k_out, is stored again, the same values, to its
// row in the k cache (its own alignment test: a cache row may be aligned where k_out's is not, or the reverse).
template <typename T, typename CT, bool APPEND>
inline void rope_unit(
    const device T* q, const device T* k, const device CT* cos_table, const device CT* sin_table,
    device T* q_out, device T* k_out, RopeDims d, uint3 gid, uint b, uint s, uint pos, KCacheRows<T> cache) {
  constexpr int N = ChunkOf<T>::N;
  const uint half_rot = d.rotary_dim / 2;
  const uint rot_span = interleaved ? d.rotary_dim : half_rot;  // elements each rotary chunk index runs over
  const uint rot_units = (rot_span + N - 1) / N;
  const uint head_begin = gid.y * d.heads_per_thread;
  const uint head_end = min(head_begin + d.heads_per_thread, d.q_heads + d.k_heads);

  if (gid.x < rot_units) {
    const uint u = gid.x;
    const size_t row = size_t(b) * d.cos_batch_stride + size_t(pos) * d.rotary_dim;
    const device CT* cos_row = cos_table + row;
    const device CT* sin_row = sin_table + row;
    // Table values: interleaved, c0/s0 hold the chunk itself; half-split, c0/s0 the first half, c1/s1 the second.
    TableSpan c0, s0, c1, s1;
    if (interleaved) {
      const bool tvec = aligned16(cos_row) && aligned16(sin_row);
      c0 = load_span<CT, N>(cos_row, u, rot_span, tvec);
      s0 = load_span<CT, N>(sin_row, u, rot_span, tvec);
    } else {
      const bool tvec = aligned16(cos_row) && aligned16(sin_row) && aligned16(cos_row + half_rot) &&
                        aligned16(sin_row + half_rot);
      c0 = load_span<CT, N>(cos_row, u, half_rot, tvec);
      s0 = load_span<CT, N>(sin_row, u, half_rot, tvec);
      c1 = load_span<CT, N>(cos_row + half_rot, u, half_rot, tvec);
      s1 = load_span<CT, N>(sin_row + half_rot, u, half_rot, tvec);
    }

    // Head h + 1's x chunks are loaded (as raw bits) before head h is rotated and stored, so a thread keeps two
    // heads' loads in flight, not one (see the header: the rolled loop waited on each head's loads in turn).
    HeadChunks next = load_head_chunks(q, k, q_out, k_out, d, head_begin, b, s, u, rot_span, half_rot);
    for (uint h = head_begin; h < head_end; h++) {
      const HeadChunks cur = next;
      if (h + 1 < head_end) {
        next = load_head_chunks(q, k, q_out, k_out, d, h + 1, b, s, u, rot_span, half_rot);
      }
      const size_t base = head_row(d, h, b, s);
      device T* out = (h < d.q_heads ? q_out : k_out) + base;
      float a[N];
      unpack_chunk<T>(cur.first, a);
      if (interleaved) {
        float c[N], sn[N];
        span_values<CT, N>(c0, c);
        span_values<CT, N>(s0, sn);
        for (int p = 0; p < N; p += 2) {
          const float x0 = a[p];
          const float x1 = a[p + 1];
          a[p] = x0 * c[p] - x1 * sn[p];
          a[p + 1] = x1 * c[p + 1] + x0 * sn[p + 1];
        }
        store_chunk(out, u, rot_span, cur.vec, a);
        if (APPEND && h >= d.q_heads) {
          device T* row = cache.rows + cache_row(d, cache, h, b, s);
          store_chunk(row, u, rot_span, aligned16(row), a);
        }
      } else {
        float e[N], ca[N], sa[N], cb[N], sb[N];
        unpack_chunk<T>(cur.second, e);
        span_values<CT, N>(c0, ca);
        span_values<CT, N>(s0, sa);
        span_values<CT, N>(c1, cb);
        span_values<CT, N>(s1, sb);
        for (int i = 0; i < N; i++) {
          const float x0 = a[i];
          const float x1 = e[i];
          a[i] = x0 * ca[i] - x1 * sa[i];
          e[i] = x1 * cb[i] + x0 * sb[i];
        }
        if (APPEND && h >= d.q_heads) {
          // Rounded to T once and held as bits (8 registers, not 16 fp32 values) for both destinations.
          const uint4 first = pack_chunk<T>(a);
          const uint4 second = pack_chunk<T>(e);
          store_chunk_bits(out, u, half_rot, cur.vec, first);
          store_chunk_bits(out + half_rot, u, half_rot, cur.vec, second);
          device T* row = cache.rows + cache_row(d, cache, h, b, s);
          const bool cvec = aligned16(row) && aligned16(row + half_rot);
          store_chunk_bits(row, u, half_rot, cvec, first);
          store_chunk_bits(row + half_rot, u, half_rot, cvec, second);
        } else {
          store_chunk(out, u, half_rot, cur.vec, a);
          store_chunk(out + half_rot, u, half_rot, cur.vec, e);
        }
      }
    }
  } else {
    // Pass-through columns of a partial rotary (rotary_dim < head_dim).
    const uint u = gid.x - rot_units;
    const uint rest = d.head_dim - d.rotary_dim;
    for (uint h = head_begin; h < head_end; h++) {
      const size_t base = head_row(d, h, b, s) + d.rotary_dim;
      const device T* x = (h < d.q_heads ? q : k) + base;
      device T* out = (h < d.q_heads ? q_out : k_out) + base;
      const bool vec = aligned16(x) && aligned16(out);
      float a[N];
      load_chunk(x, u, rest, vec, a);
      store_chunk(out, u, rest, vec, a);
      if (APPEND && h >= d.q_heads) {
        device T* row = cache.rows + cache_row(d, cache, h, b, s) + d.rotary_dim;
        store_chunk(row, u, rest, aligned16(row), a);
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
[[kernel, max_total_threads_per_threadgroup(256)]] void rope(ROPE_COMMON_PARAMS,
                                                             uint3 gid [[thread_position_in_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  rope_unit<T, CT, false>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, offset + s,
                           KCacheRows<T>{nullptr, 0, 0});
}

// Positions from position_ids[b * positions_batch_stride + s] (int or long).
template <typename T, typename CT, typename IdT>
[[kernel, max_total_threads_per_threadgroup(256)]] void rope_ids(ROPE_COMMON_PARAMS,
                                                                 const device IdT* positions [[buffer(16)]],
                         uint3 gid [[thread_position_in_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  const uint pos = table_row(long(positions[b * positions_batch_stride + s]), table_rows);
  rope_unit<T, CT, false>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, pos,
                           KCacheRows<T>{nullptr, 0, 0});
}

// ---- rope_kv_append: rope's rotation of q and k, and the KV-cache append of the rotated k and of v, in one launch ----
//
// Grid: rope's grid (x = unit along a head row, y = block of heads, z = token b * seq + s, for z < batch * seq),
// whose threads on k's heads store each rotated chunk to k_out and to the k cache row cache_offset + s of that
// head; then v slices (z >= batch * seq) that copy v into v_cache as kv_cache_append does: a flat index over the
// slices, c = ((z - batch * seq) * grid.y + y) * grid.x + x, is chunk c % chunks of (batch, head) c / chunks, where
// a head's seq * v_dim new elements are contiguous both in v and in the cache (chunks = ceil(seq * v_dim / N);
// 16-byte loads and stores of the raw bits where the head's source and destination are aligned, a guarded tail,
// no conversion). Threads past the last chunk do nothing. k is read once and written twice (k_out, k cache), v
// read once and written once: the minimum for what the op returns.
#define ROPE_KV_APPEND_PARAMS                               \
  ROPE_COMMON_PARAMS,                                       \
  const device T* v [[buffer(16)]],                         \
  device T* k_cache [[buffer(17)]],                         \
  device T* v_cache [[buffer(18)]],                         \
  constant uint& batch [[buffer(19)]],                      \
  constant uint& v_dim [[buffer(20)]],                      \
  constant uint& cache_len [[buffer(21)]],                  \
  constant uint& cache_offset [[buffer(22)]]

// A v slice thread's (gid.z >= batch * seq) chunk c of the v slices (see above): v[b, h, :, :] ->
// v_cache[b, h, cache_offset : cache_offset + seq, :].
template <typename T>
inline void append_v_chunk(const device T* v, device T* v_cache, RopeDims d, uint batch, uint v_dim,
                           uint cache_len, uint cache_offset, uint3 gid, uint3 grid) {
  constexpr int N = ChunkOf<T>::N;
  const size_t c = (size_t(gid.z - batch * d.seq) * grid.y + gid.y) * grid.x + gid.x;
  const uint per_head = d.seq * v_dim;  // new elements of one (batch, head)
  const uint chunks = (per_head + N - 1) / N;
  if (chunks == 0) {
    return;
  }
  const size_t head = c / chunks;
  if (head >= size_t(batch) * d.k_heads) {
    return;
  }
  const uint j = uint(c - head * chunks);
  const device T* src = v + head * per_head;
  device T* dst = v_cache + (head * cache_len + cache_offset) * v_dim;
  const bool vec = aligned16(src) && aligned16(dst);
  store_chunk_bits(dst, j, per_head, vec, load_chunk_bits(src, j, per_head, vec));
}

// Positions offset + s.
template <typename T, typename CT>
[[kernel, max_total_threads_per_threadgroup(256)]] void rope_kv_append(ROPE_KV_APPEND_PARAMS,
                                                                       uint3 gid [[thread_position_in_grid]],
                                                                       uint3 grid [[threads_per_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  if (gid.z >= batch * seq) {
    append_v_chunk(v, v_cache, d, batch, v_dim, cache_len, cache_offset, gid, grid);
    return;
  }
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  rope_unit<T, CT, true>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, offset + s,
                          KCacheRows<T>{k_cache, cache_len, cache_offset});
}

// Positions from position_ids[b * positions_batch_stride + s] (int or long), clamped as rope_ids does.
template <typename T, typename CT, typename IdT>
[[kernel, max_total_threads_per_threadgroup(256)]] void rope_kv_append_ids(ROPE_KV_APPEND_PARAMS,
                                                                           const device IdT* positions [[buffer(23)]],
                                                                           uint3 gid [[thread_position_in_grid]],
                                                                           uint3 grid [[threads_per_grid]]) {
  const RopeDims d = {q_heads, k_heads, seq, head_dim, rotary_dim, cos_batch_stride, heads_per_thread};
  if (gid.z >= batch * seq) {
    append_v_chunk(v, v_cache, d, batch, v_dim, cache_len, cache_offset, gid, grid);
    return;
  }
  const uint b = gid.z / seq;
  const uint s = gid.z - b * seq;
  const uint pos = table_row(long(positions[b * positions_batch_stride + s]), table_rows);
  rope_unit<T, CT, true>(q, k, cos_table, sin_table, q_out, k_out, d, gid, b, s, pos,
                          KCacheRows<T>{k_cache, cache_len, cache_offset});
}

// Host names: rope[_ids32|_ids64][_f32tables]_<dtype> and rope_kv_append[_ids32|_ids64][_f32tables]_<dtype>;
// _f32tables reads float32 tables with half or bfloat q, k.
#define INSTANTIATE_ROPE(tables, name, T, CT)                                                         \
  template [[host_name("rope" tables "_" #name)]] [[kernel]] decltype(rope<T, CT>) rope<T, CT>;      \
  template [[host_name("rope_ids32" tables "_" #name)]] [[kernel]] decltype(rope_ids<T, CT, int>)   \
      rope_ids<T, CT, int>;                                                                           \
  template [[host_name("rope_ids64" tables "_" #name)]] [[kernel]] decltype(rope_ids<T, CT, long>)  \
      rope_ids<T, CT, long>;                                                                          \
  template [[host_name("rope_kv_append" tables "_" #name)]] [[kernel]] decltype(rope_kv_append<T, CT>) \
      rope_kv_append<T, CT>;                                                                          \
  template [[host_name("rope_kv_append_ids32" tables "_" #name)]] [[kernel]]                         \
      decltype(rope_kv_append_ids<T, CT, int>) rope_kv_append_ids<T, CT, int>;                        \
  template [[host_name("rope_kv_append_ids64" tables "_" #name)]] [[kernel]]                         \
      decltype(rope_kv_append_ids<T, CT, long>) rope_kv_append_ids<T, CT, long>;

INSTANTIATE_ROPE("", float32, float, float)
INSTANTIATE_ROPE("", float16, half, half)
INSTANTIATE_ROPE("", bfloat16, bfloat, bfloat)
INSTANTIATE_ROPE("_f32tables", float16, half, float)
INSTANTIATE_ROPE("_f32tables", bfloat16, bfloat, float)
