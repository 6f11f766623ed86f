// Scaled dot-product attention: out = softmax(q k^T * scale + mask) v, per (batch, query head), with grouped KV
// heads (query head h reads KV head h / (Hq / Hk)), optional causal masking and an optional additive mask.
//
// Layouts (contiguous): q, out [B, Hq, Sq, D]; k, v [B, Hk, Sk, D] where Sk is the KV capacity and only the first
// kv_len positions are attended; mask is indexed with element strides (b, h, q, key), 0 for a broadcast dimension.
// Causal semantics: query i (0-based) of the Sq queries sits at absolute position kv_len - Sq + i and attends keys
// at positions <= that (PyTorch's is_causal when Sq == kv_len).
//
// Both kernels keep every intermediate in fp32 (q is pre-multiplied by scale as it is loaded): the scores, the
// running row max m, the running row sum l and the output accumulator O live in registers as 8x8
// simdgroup matrices (Apple's lane layout: lane l holds row (l / 16) * 4 + (l / 2) % 4, columns
// ((l / 8) % 2) * 4 + (l % 2) * 2 + {0, 1}; the four lanes sharing a row differ in lane bits 0 and 3, so a row
// reduction is two simd_shuffle_xor steps). The full score matrix is never materialised. Online softmax per key
// block: m' = max(m, rowmax(S)); P = exp(S - m'); l = l * exp(m - m') + rowsum(P); O = O * exp(m - m') + P V.
// Positions a query cannot see (past kv_len, or causally in the future) score MASKED, the lowest finite float, for
// the row max (Metal compiles with fast math, which may assume no infinities), and their probabilities are set to 0
// explicitly, so an additive mask of finfo.min still weighs visible positions exactly like the reference does. A
// row whose visible scores are all -inf ends with l = 0 and writes 0 / 0 = NaN, as the reference's softmax does.
//
// attention_prefill (Sq > 8): one threadgroup of PREFILL_SIMD_GROUPS SIMD groups per block of PREFILL_BQ query
// rows of one (batch, head); each SIMD group owns 8 rows. Key/value blocks of PREFILL_BK rows are staged through
// one threadgroup tile (K, then V in the same tile) with zero fill past kv_len; causal blocks past the query
// block's last position are skipped.
//   Traffic: q read once, out written once (the minimum); k and v read once per query block, i.e.
//   ceil(Sq / PREFILL_BQ) times per query head (halved on average under causal masking), plus the mask once.
//   Threadgroup memory: PREFILL_BK * (D + pad) elements of T, at most 16.5 KiB (float, D = 128).
//
// attention_decode (Sq <= 8): one threadgroup per group of `heads_per_group` query heads that share a KV head
// (heads_per_group * Sq <= 8 rows, one 8-row matrix). DECODE_SIMD_GROUPS SIMD groups split the KV length (SIMD
// group s takes key blocks s, s + DECODE_SIMD_GROUPS, ...), loading K and V straight into matrices, each keeping
// its own (m, l, O); the partial results are merged through threadgroup memory (global row max, rescaled sums, a
// tree sum of the O tiles). Traffic: q read once, out written once; each K/V element is read Hq / Hk /
// heads_per_group times (once when a threadgroup covers a whole KV group), which is the minimum for
// heads_per_group = Hq / Hk. Threadgroup memory: 16 floats per SIMD group for (m, l) plus DECODE_SIMD_GROUPS / 2
// tiles of 8 x D floats, at most 16.5 KiB (D = 128). The KV length is not split across threadgroups: that needs a
// second dispatch (or scratch memory) to merge, which one LaunchPlan cannot express.
#include <metal_stdlib>
using namespace metal;

constant bool has_mask [[function_constant(0)]];

constant constexpr int FRAG = 8;                      // simdgroup matrix side
constant constexpr float MASKED = -3.402823466e+38f;  // lowest finite float: the score of an invisible position

constant constexpr int PREFILL_SIMD_GROUPS = 4;
constant constexpr int PREFILL_BQ = PREFILL_SIMD_GROUPS * FRAG;  // query rows per threadgroup
constant constexpr int PREFILL_BK = 32;                          // key rows per staged block
constant constexpr int TILE_PAD_BYTES = 16;                      // staggers tile rows across memory banks
constant constexpr int TILE_LOAD_VEC = 4;                        // consecutive elements per thread in tile loads

constant constexpr int DECODE_SIMD_GROUPS = 8;        // power of two: the O tiles are summed as a tree
static_assert(PREFILL_SIMD_GROUPS * 32 == 128 && DECODE_SIMD_GROUPS * 32 == 256,
              "keep the max_total_threads_per_threadgroup literals below in step");

typedef simdgroup_matrix<float, 8, 8> frag_t;

// This lane's element coordinates inside an 8x8 simdgroup matrix (it holds (row, col) and (row, col + 1)).
inline int frag_row(uint lane) { return int((lane / 16) * 4 + (lane / 2) % 4); }
inline int frag_col(uint lane) { return int(((lane / 8) % 2) * 4 + (lane % 2) * 2); }

// Sum and max over the four lanes that hold one matrix row.
inline float row_max(float x) {
  x = max(x, simd_shuffle_xor(x, ushort(1)));
  return max(x, simd_shuffle_xor(x, ushort(8)));
}
inline float row_sum(float x) {
  x += simd_shuffle_xor(x, ushort(1));
  return x + simd_shuffle_xor(x, ushort(8));
}

// Whether query position q_pos may see key position `key`.
inline bool is_visible(uint key, uint kv_len, bool causal, uint q_pos) {
  return key < kv_len && (!causal || key <= q_pos);
}

// Masks the scores of one 8-key block S[j] (this lane's two elements): adds the additive mask where visible, MASKED
// elsewhere; returns the visible elements as bits 2 * j + e.
template <typename T, int N>
inline uint mask_scores(thread frag_t* S, uint key0, int col, bool row_ok, uint kv_len, bool causal, uint q_pos,
                        const device T* mask_row, uint mask_stride_k) {
  uint bits = 0;
  for (int j = 0; j < N; j++) {
    for (int e = 0; e < 2; e++) {
      uint key = key0 + j * FRAG + col + e;
      bool visible = row_ok && is_visible(key, kv_len, causal, q_pos);
      float s = S[j].thread_elements()[e];
      if (has_mask && visible) {
        s += float(mask_row[key * mask_stride_k]);
      }
      S[j].thread_elements()[e] = visible ? s : MASKED;
      bits |= visible ? 1u << (2 * j + e) : 0u;
    }
  }
  return bits;
}

// Online-softmax step for one 8-row block of scores S[N] (this lane's two elements of each): updates the running
// max and sum of the lane's row, turns S into probabilities (0 where not visible) and returns the factor that
// rescales O. While a row has seen nothing visible, m stays MASKED, factor is 1 and l and O stay 0.
template <int N>
inline float online_softmax(thread frag_t* S, uint visible, thread float& m_run, thread float& l_run) {
  float block_max = MASKED;
  for (int j = 0; j < N; j++) {
    block_max = max(block_max, max(S[j].thread_elements()[0], S[j].thread_elements()[1]));
  }
  const float m_new = max(m_run, row_max(block_max));
  const float factor = metal::precise::exp(m_run - m_new);
  float block_sum = 0.0f;
  for (int j = 0; j < N; j++) {
    for (int e = 0; e < 2; e++) {
      float p = (visible >> (2 * j + e)) & 1u ? metal::precise::exp(S[j].thread_elements()[e] - m_new) : 0.0f;
      S[j].thread_elements()[e] = p;
      block_sum += p;
    }
  }
  l_run = l_run * factor + row_sum(block_sum);
  m_run = m_new;
  return factor;
}

// Loads this lane's elements of the 8-row query matrices (rows past the valid ones are zero), times the scale.
template <typename T, int D>
inline void load_queries(thread frag_t* Q, const device T* q_row, bool row_ok, float q_scale, int col) {
  for (int d = 0; d < D / FRAG; d++) {
    float a = 0.0f, b = 0.0f;
    if (row_ok) {
      a = float(q_row[d * FRAG + col]) * q_scale;
      b = float(q_row[d * FRAG + col + 1]) * q_scale;
    }
    Q[d].thread_elements()[0] = a;
    Q[d].thread_elements()[1] = b;
  }
}

// Stages rows [row0, row0 + PREFILL_BK) of a [.., D] K or V slice into the tile; rows at or past kv_len become 0
// (the cache past kv_len may hold anything, and 0 * NaN would poison P V).
template <typename T, int D, int LD, int THREADS>
inline void load_tile(threadgroup T* tile, const device T* src, uint row0, uint kv_len, uint lid) {
  constexpr int CHUNKS_PER_ROW = D / TILE_LOAD_VEC;
  for (uint c = lid; c < uint(PREFILL_BK * CHUNKS_PER_ROW); c += THREADS) {
    uint r = c / CHUNKS_PER_ROW;
    uint col = (c % CHUNKS_PER_ROW) * TILE_LOAD_VEC;
    bool ok = row0 + r < kv_len;
    const device T* s = src + size_t(row0 + r) * D + col;
    for (int i = 0; i < TILE_LOAD_VEC; i++) {
      tile[r * LD + col + i] = ok ? s[i] : T(0);
    }
  }
}

template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(128)]] void attention_prefill(  // 128 = PREFILL_SIMD_GROUPS * 32
    const device T* q [[buffer(0)]],
    const device T* k [[buffer(1)]],
    const device T* v [[buffer(2)]],
    const device T* mask [[buffer(3), function_constant(has_mask)]],
    device T* out [[buffer(4)]],
    constant float& scale [[buffer(5)]],
    constant uint& num_q_heads [[buffer(6)]],
    constant uint& gqa_factor [[buffer(7)]],
    constant uint& q_len [[buffer(8)]],
    constant uint& kv_capacity [[buffer(9)]],
    constant uint& kv_len [[buffer(10)]],
    constant bool& causal [[buffer(11)]],
    constant uint& mask_stride_b [[buffer(12)]],
    constant uint& mask_stride_h [[buffer(13)]],
    constant uint& mask_stride_q [[buffer(14)]],
    constant uint& mask_stride_k [[buffer(15)]],
    uint3 tg [[threadgroup_position_in_grid]],
    uint lid [[thread_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int THREADS = PREFILL_SIMD_GROUPS * 32;
  constexpr int LD = D + TILE_PAD_BYTES / int(sizeof(T));
  constexpr int DF = D / FRAG;
  constexpr int KF = PREFILL_BK / FRAG;
  threadgroup T kv_tile[PREFILL_BK * LD];

  const uint head = tg.y, batch = tg.z;
  const uint num_kv_heads = num_q_heads / gqa_factor;
  const size_t q_head = size_t(batch) * num_q_heads + head;
  const size_t kv_head = size_t(batch) * num_kv_heads + head / gqa_factor;
  const device T* k_head = k + kv_head * kv_capacity * D;
  const device T* v_head = v + kv_head * kv_capacity * D;

  const int row = frag_row(lane), col = frag_col(lane);
  const uint q_block0 = tg.x * PREFILL_BQ;
  const uint q_index = q_block0 + sg * FRAG + row;  // this lane's query row
  const bool row_ok = q_index < q_len;
  const uint q_pos = kv_len - q_len + q_index;      // its absolute position (causal)

  frag_t Q[DF];
  load_queries<T, D>(Q, q + (q_head * q_len + q_index) * D, row_ok, scale, col);
  const device T* mask_row = q;  // never read unless has_mask
  if (has_mask && row_ok) {
    mask_row = mask + size_t(batch) * mask_stride_b + size_t(head) * mask_stride_h + size_t(q_index) * mask_stride_q;
  }

  frag_t O[DF];
  for (int d = 0; d < DF; d++) {
    O[d] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }
  float m_run = MASKED, l_run = 0.0f;

  // Under causal masking no query of this block sees keys past its last row's position.
  uint key_end = kv_len;
  if (causal) {
    key_end = min(kv_len, kv_len - q_len + min(q_len, q_block0 + PREFILL_BQ));
  }

  for (uint k0 = 0; k0 < key_end; k0 += PREFILL_BK) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous block's V reads are done
    load_tile<T, D, LD, THREADS>(kv_tile, k_head, k0, kv_len, lid);
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S = Q K^T for this SIMD group's 8 rows and PREFILL_BK keys; element (r, c) of K^T block (j, d) is
    // K[j * 8 + c][d * 8 + r].
    frag_t S[KF];
    for (int j = 0; j < KF; j++) {
      S[j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      for (int d = 0; d < DF; d++) {
        frag_t Kt;
        Kt.thread_elements()[0] = float(kv_tile[(j * FRAG + col) * LD + d * FRAG + row]);
        Kt.thread_elements()[1] = float(kv_tile[(j * FRAG + col + 1) * LD + d * FRAG + row]);
        simdgroup_multiply_accumulate(S[j], Q[d], Kt, S[j]);
      }
    }
    const uint visible = mask_scores<T, KF>(S, k0, col, row_ok, kv_len, causal, q_pos, mask_row, mask_stride_k);
    const float factor = online_softmax<KF>(S, visible, m_run, l_run);
    for (int d = 0; d < DF; d++) {
      O[d].thread_elements() *= factor;
    }

    threadgroup_barrier(mem_flags::mem_threadgroup);  // every SIMD group is done with K
    load_tile<T, D, LD, THREADS>(kv_tile, v_head, k0, kv_len, lid);
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // O += P V; element (r, c) of V block (j, d) is V[j * 8 + r][d * 8 + c].
    for (int d = 0; d < DF; d++) {
      for (int j = 0; j < KF; j++) {
        frag_t Vb;
        Vb.thread_elements()[0] = float(kv_tile[(j * FRAG + row) * LD + d * FRAG + col]);
        Vb.thread_elements()[1] = float(kv_tile[(j * FRAG + row) * LD + d * FRAG + col + 1]);
        simdgroup_multiply_accumulate(O[d], S[j], Vb, O[d]);
      }
    }
  }

  if (row_ok) {
    device T* o_row = out + (q_head * q_len + q_index) * D;
    for (int d = 0; d < DF; d++) {
      o_row[d * FRAG + col] = T(O[d].thread_elements()[0] / l_run);
      o_row[d * FRAG + col + 1] = T(O[d].thread_elements()[1] / l_run);
    }
  }
}

template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(256)]] void attention_decode(  // 256 = DECODE_SIMD_GROUPS * 32
    const device T* q [[buffer(0)]],
    const device T* k [[buffer(1)]],
    const device T* v [[buffer(2)]],
    const device T* mask [[buffer(3), function_constant(has_mask)]],
    device T* out [[buffer(4)]],
    constant float& scale [[buffer(5)]],
    constant uint& num_q_heads [[buffer(6)]],
    constant uint& gqa_factor [[buffer(7)]],
    constant uint& q_len [[buffer(8)]],
    constant uint& kv_capacity [[buffer(9)]],
    constant uint& kv_len [[buffer(10)]],
    constant bool& causal [[buffer(11)]],
    constant uint& mask_stride_b [[buffer(12)]],
    constant uint& mask_stride_h [[buffer(13)]],
    constant uint& mask_stride_q [[buffer(14)]],
    constant uint& mask_stride_k [[buffer(15)]],
    constant uint& heads_per_group [[buffer(16)]],
    uint3 tg [[threadgroup_position_in_grid]],
    uint lane [[thread_index_in_simdgroup]],
    uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int DF = D / FRAG;
  constexpr int SLOTS = DECODE_SIMD_GROUPS / 2;
  threadgroup float m_part[DECODE_SIMD_GROUPS * FRAG];
  threadgroup float l_part[DECODE_SIMD_GROUPS * FRAG];
  threadgroup float o_part[SLOTS * FRAG * D];

  const uint batch = tg.y;
  const uint head0 = tg.x * heads_per_group;
  const uint num_kv_heads = num_q_heads / gqa_factor;
  const size_t kv_head = size_t(batch) * num_kv_heads + head0 / gqa_factor;
  const device T* k_head = k + kv_head * kv_capacity * D;
  const device T* v_head = v + kv_head * kv_capacity * D;

  // Row r of the 8-row block is query token r % q_len of head head0 + r / q_len.
  const int row = frag_row(lane), col = frag_col(lane);
  const bool row_ok = uint(row) < heads_per_group * q_len;
  const uint head = head0 + (row_ok ? uint(row) / q_len : 0);
  const uint token = row_ok ? uint(row) % q_len : 0;
  const size_t q_head = size_t(batch) * num_q_heads + head;
  const uint q_pos = kv_len - q_len + token;

  frag_t Q[DF];
  load_queries<T, D>(Q, q + (q_head * q_len + token) * D, row_ok, scale, col);
  const device T* mask_row = q;  // never read unless has_mask
  if (has_mask && row_ok) {
    mask_row = mask + size_t(batch) * mask_stride_b + size_t(head) * mask_stride_h + size_t(token) * mask_stride_q;
  }

  frag_t O[DF];
  for (int d = 0; d < DF; d++) {
    O[d] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }
  float m_run = MASKED, l_run = 0.0f;

  for (uint k0 = sg * FRAG; k0 < kv_len; k0 += DECODE_SIMD_GROUPS * FRAG) {
    // S = Q K^T for 8 keys; this lane's K^T elements are K[k0 + col + {0, 1}][d * 8 + row].
    const uint key_a = k0 + col, key_b = key_a + 1;
    const device T* ka = k_head + size_t(key_a) * D + row;
    const device T* kb = k_head + size_t(key_b) * D + row;
    frag_t S[1];
    S[0] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (int d = 0; d < DF; d++) {
      frag_t Kt;
      Kt.thread_elements()[0] = key_a < kv_len ? float(ka[d * FRAG]) : 0.0f;
      Kt.thread_elements()[1] = key_b < kv_len ? float(kb[d * FRAG]) : 0.0f;
      simdgroup_multiply_accumulate(S[0], Q[d], Kt, S[0]);
    }
    const uint visible = mask_scores<T, 1>(S, k0, col, row_ok, kv_len, causal, q_pos, mask_row, mask_stride_k);
    const float factor = online_softmax<1>(S, visible, m_run, l_run);

    // O += P V; this lane's V elements are V[k0 + row][d * 8 + col + {0, 1}].
    const uint key_v = k0 + row;
    const device T* vr = v_head + size_t(key_v) * D + col;
    for (int d = 0; d < DF; d++) {
      frag_t Vb;
      Vb.thread_elements()[0] = key_v < kv_len ? float(vr[d * FRAG]) : 0.0f;
      Vb.thread_elements()[1] = key_v < kv_len ? float(vr[d * FRAG + 1]) : 0.0f;
      O[d].thread_elements() *= factor;
      simdgroup_multiply_accumulate(O[d], S[0], Vb, O[d]);
    }
  }

  // Merge the SIMD groups' partial softmax results: global row max and sum, then each rescales its O.
  if (col == 0) {  // one lane per row
    m_part[sg * FRAG + row] = m_run;
    l_part[sg * FRAG + row] = l_run;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float m_all = MASKED;
  for (int s = 0; s < DECODE_SIMD_GROUPS; s++) {
    m_all = max(m_all, m_part[s * FRAG + row]);
  }
  float l_all = 0.0f;
  for (int s = 0; s < DECODE_SIMD_GROUPS; s++) {
    l_all += l_part[s * FRAG + row] * metal::precise::exp(m_part[s * FRAG + row] - m_all);
  }
  const float own = metal::precise::exp(m_run - m_all) / l_all;  // l_all = 0 (all -inf): NaN, like softmax
  for (int d = 0; d < DF; d++) {
    O[d].thread_elements() *= own;
  }

  // Tree sum of the O tiles: the upper half of the remaining SIMD groups hands its tiles to the lower half.
  for (uint half_count = SLOTS; half_count >= 1; half_count /= 2) {
    if (sg >= half_count && sg < 2 * half_count) {
      threadgroup float* slot = o_part + (sg - half_count) * (FRAG * D);
      for (int d = 0; d < DF; d++) {
        slot[row * D + d * FRAG + col] = O[d].thread_elements()[0];
        slot[row * D + d * FRAG + col + 1] = O[d].thread_elements()[1];
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg < half_count) {
      const threadgroup float* slot = o_part + sg * (FRAG * D);
      for (int d = 0; d < DF; d++) {
        O[d].thread_elements()[0] += slot[row * D + d * FRAG + col];
        O[d].thread_elements()[1] += slot[row * D + d * FRAG + col + 1];
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  if (sg == 0 && row_ok) {
    device T* o_row = out + (q_head * q_len + token) * D;
    for (int d = 0; d < DF; d++) {
      o_row[d * FRAG + col] = T(O[d].thread_elements()[0]);
      o_row[d * FRAG + col + 1] = T(O[d].thread_elements()[1]);
    }
  }
}

// Host names: attention_<prefill|decode>_d<D>_<dtype>.
#define INSTANTIATE_ATTENTION(name, T, D)                                                                   \
  template [[host_name("attention_prefill_d" #D "_" #name)]] [[kernel]] decltype(attention_prefill<T, D>) \
      attention_prefill<T, D>;                                                                              \
  template [[host_name("attention_decode_d" #D "_" #name)]] [[kernel]] decltype(attention_decode<T, D>)   \
      attention_decode<T, D>;

#define INSTANTIATE_ATTENTION_ALL_DIMS(name, T) \
  INSTANTIATE_ATTENTION(name, T, 64)            \
  INSTANTIATE_ATTENTION(name, T, 80)            \
  INSTANTIATE_ATTENTION(name, T, 96)            \
  INSTANTIATE_ATTENTION(name, T, 128)

INSTANTIATE_ATTENTION_ALL_DIMS(float32, float)
INSTANTIATE_ATTENTION_ALL_DIMS(float16, half)
INSTANTIATE_ATTENTION_ALL_DIMS(bfloat16, bfloat)
