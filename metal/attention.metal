// Scaled dot-product attention: out = softmax(q k^T * scale + mask) v, per (batch, query head), with grouped KV
// heads (query head h reads KV head h / (Hq / Hk)), optional causal masking and an optional additive or boolean
// mask (has_mask: added to the scores; has_bool_mask: false hides the key, like SDPA's bool attn_mask).
//
// Layouts (contiguous): q, out [B, Hq, Sq, D]; k, v [B, Hk, Sk, D] where Sk is the KV capacity and only the first
// kv_len positions are attended; mask is indexed with element strides (b, h, q, key), 0 for a broadcast dimension.
// Causal semantics: query i (0-based) of the Sq queries sits at absolute position kv_len - Sq + i and attends keys
// at positions <= that (PyTorch's is_causal when Sq == kv_len).
//
// Every kernel keeps every intermediate in fp32. Arithmetic order (so that a result the plain formula gets finite
// in fp32 is finite here too): q is multiplied by the scale's part up to 1 as it is loaded, the scores by the rest
// after the dot product (split_scale), so neither product overflows unless the score itself does; probabilities
// are accumulated times 2^-ceil(log2 kv_len) (probability_scale), so l <= 1 and the unnormalised O = sum p v stays
// within max |v| wherever it is summed (per key slot, SIMD group, block or merge), and dividing by l at the end
// cancels the factor. In prefill the
// scores, the running row max m, the running row sum l and the output accumulator O live in registers as 8x8
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
// Decode (Sq <= 8): the KV length is split into `blocks` blocks of block_len keys over threadgroups; one
// threadgroup takes one block for up to ROWS query rows that share one KV head (the G = Hq / Hk heads of a KV group
// times the Sq tokens are consecutive rows of q: ROWS at a time, so K and V are read once per KV head whenever
// G * Sq <= ROWS; the row groups of a block are neighbours in the grid, so a re-read hits the cache).
// Grid: (blocks * row groups, Hk, B) threadgroups of DECODE_SIMD_GROUPS SIMD groups.
//   attention_decode_split (pass 1) writes each row's unnormalised block result (m, l, O in fp32) to scratch;
//   attention_decode_merge (pass 2, one threadgroup per row) rescales and sums the blocks: M = max m_b,
//   l = sum l_b e^(m_b - M), out = sum O_b e^(m_b - M) / l. A KV length of one block runs attention_decode, the
//   same pass 1 writing the normalised result to out: one dispatch, no scratch. The host picks the split
//   (attention.py: decode_split): blocks enough for ~1024 threadgroups, each at least 8 times the bytes of its
//   partial results in K and V, and (when split) whole multiples of DECODE_SIMD_GROUPS tiles of 32 keys, so every
//   SIMD group of a block gets the same share. Before, a block was any whole number of tiles: B1 Hq32/Hk8 D128 at
//   N 512-8192 ran blocks of 3 tiles (bf16) or 2 (fp32), one or two of the 4 SIMD groups idle yet holding their
//   registers until the merge; now 4 tiles, with the same longest serial loop (one tile per SIMD group) in fewer
//   threadgroups: bf16 N512 48 -> 32, N2048 176 -> 128, N8192 688 -> 512; fp32 64 -> 32, 256 -> 128, 1024 -> 512.
//   The shortest serial loop is one tile of 32 keys x the threadgroup's rows per SIMD group: more blocks cannot
//   shorten it, fewer rows can. So where the grid stays small (below 512 threadgroups: a short KV length at batch
//   1), the host gives each threadgroup fewer rows (rows_per_group: 2 or 1 of ROWS), more threadgroups each re-read
//   K and V from the cache. H100 lane, side by side in one run (NVIDIA times, not Apple's): B1 Hq32/Hk8 D128 bf16
//   N512 19.5 -> 14.5 us, N2048 20.1 -> 17.0 us, fp32 N512 31.0 -> 20.3 us, N2048 31.7 -> 21.4 us; grids of 512
//   threadgroups or more unchanged. One row per threadgroup everywhere was 2.3-2.9x slower at N >= 2048 x B4.
// Lane layout (DecodeLayout): a lane holds E = 16 bytes of a key row (4 floats or 8 halves/bfloats: one 16-byte
// load, whole vec<T, 4>s), L = D / E lanes (rounded up to a power of two; D = 80, 96 leave some idle) cover a
// row, so a SIMD group reads KPS = 32 / L consecutive keys, 32 x 16 = 512 contiguous bytes, per step. A SIMD group
// works in tiles of DECODE_TILE = 32 keys, L steps of KPS keys (decode_tile): the lane's partial dot products of
// the L steps are folded as they come by a reduce-scatter butterfly (each fold keeps half of two values and adds
// the partner's share: L - 1 shuffles for L keys, not log2 L per key), so after the tile every lane holds the
// full score of one of its 32 keys. Mask, running max (one simd_max per row and tile, shared by the SIMD group),
// the rescale of O and l (factor exactly 1 when the max does not grow: no branch) and exp are then done once per
// (row, tile) or (row, lane), not once per (row, lane, key); step i of O += p v takes its keys' p from the lanes
// holding them (one shuffle per row). l stays per lane, O per key slot, until the end. SIMD group s of the
// threadgroup takes the tiles block0 + (i * DECODE_SIMD_GROUPS + s) * 32; full tiles load unguarded, only a tile
// reaching past the block's end checks it (a block is whole tiles, so that is the KV length's last tile). A full
// row group (rows.count == ROWS, the usual GQA shape) runs without per-row checks. The SIMD groups' results merge
// through threadgroup memory.
// Short tiles (function constant decode_short_tiles, read by attention_decode_split alone; the host sets it where a
// split grid stays latency-bound, below 512 threadgroups, or reaches them only with one query row per threadgroup:
// attention.py, DECODE_SHORT_TILES_BELOW and short_tiles_pay). A SIMD group's
// serial loop is at least one tile per row, and a block at least 4 tiles (one per SIMD group), so with 32-key tiles B1
// Hq32/Hk8 N512 could not use more than 128 threadgroups. Under the constant a tile is DECODE_SHORT_TILE = 8 keys:
// STEPS = 8 / KPS of the same steps (every load still one 16-byte vector, a SIMD group's step still one 512-byte
// contiguous run), the folds of those log2 STEPS levels, then a butterfly of 2 shuffles over the key's remaining
// L / STEPS lanes (DecodeTile); a key's score sits in 4 lanes, one of which owns it for the softmax (the others hold
// no key: no mask read, p = 0). The host then cuts blocks of 4 x 8 keys: 4 times as many threadgroups, each a quarter
// of the serial loop. Why not 4 lanes per key each holding a quarter of the row: O lives in the lanes' key-row chunks,
// so a quarter row per lane is D / 4 accumulators per row (128 registers for 4 fp32 rows at D = 128, against 16 here)
// and per-lane strided loads; this layout changes only the number of steps. Cost: per (row, tile) STEPS E FMAs + 4
// (STEPS - 1) folds + 4 (butterfly) + 22 + E softmax + STEPS (E + 1) for p v, over 8 keys: float D128 16.3, half D128
// 14.3 per row and key against 13.7 and 11.3 with 32-key tiles; more work in total, spread over 4 times the SIMD
// groups. Measured (H100 lane, side by side in one device session, not an Apple GPU): B1 Hq32/Hk8 N512 D128 bf16
// 14.1 -> 9.0 us, fp32 20.4 -> 9.8 us; MLX's sdpa_vector_2pass took 10.2 and 11.7 us in that run (0.72x / 0.58x
// -> 1.13x / 1.19x the fastest anchor).
// Instructions per key, counted from the code per lane (= SIMD-group issues), exp counted as one, for a full row
// group, per query row and key (+ per key for all rows: loads, half/bfloat -> float conversions, addresses):
//   before (one key per lane slot per step: E FMAs, log2 L shuffle-adds, a log2 KPS shuffle-max, max, a compare
//   and uniform branch, exp, p, l, E FMAs, a row-count check; all divided by KPS):
//     float D128 32 (5 shuffles, 1 exp) + 6;  half D128 20 (2.5 shuffles, 0.5 exp) + 11;  float D64 16;  half D64 10
//   after (per tile and row: L E FMAs + 4 (L - 1) folds + 22 + E softmax + L (E + 1) for p v; divided by 32):
//     float D128 13.7 (2.1 shuffles, 1/16 exp) + 4;  half D128 11.3 (1.1 shuffles) + 10;  float D64 7.2;  half D64 6.1
//   so at G = 4 rows per KV head: float D128 134 -> 59 per key, half D128 91 -> 55. The floor is 2 D / 32 FMAs
//   per row and key (8 at D = 128).
// Registers per lane (floats): q and O for ROWS = DECODE_ROWS = 4 rows of E elements (2 x 16 float, 2 x 32 half),
// m and l per row (8), the fold's pending partials (log2 L + 1 per row: 24 float D128, 20 half D128), one K or V
// chunk (E), p per row after the fold (4, while the partials are dead): at most 68 (float) and 100 (half/bfloat)
// live at D = 128, against 96 and 104 before the tiles (two steps' K and V chunks in flight).
// ROWS is 4 in every dtype (it was 32 / E: 8 in float, where the fold's partials would push float to ~130).
// Tried: ROWS = 2 (ptxas: float D128 split kernel 124 -> 77 registers, 16-bit unchanged at 118-128), so more
// threadgroups fit a core, each KV head's rows in two threadgroups re-reading K and V from the cache. H200 lane, side
// by side in one session (not an Apple GPU): 0.64-0.73x at N >= 2048 in both fp32 and bf16 (B8 N32768 D128 fp32
// 1340 -> 2026 us), 1.01-1.12x only at N512: K and V read once per KV head matter more than the registers.
// Local memory (NVIDIA lane, ptxas sm_90, benches/lane_registers.py; the same trade holds on Apple GPUs): the
// fold's carry loop ran `for (j = 0; (i >> j) & 1; j++) fold(pend[j][r], ...)`, a bound the compiler cannot
// resolve, so pend[][] was indexed at run time and lived in memory: every fold a local load and store. The carry
// now runs over the compile-time levels j with a uniform "parked" flag, so every pend index is a constant.
// Decode kernels (registers / stack frame / spill stores, worst over the specialisations):
//   before: half/bfloat D128 127-128 / 80 B / 0, D64 127-128 / 64 B / 0; float D128 92-96 / 112 B / 16 B,
//           D64 90-93 / 80-96 B / 0-16 B
//   after (no-mask specialisation): half/bfloat D128 145-147 / 0 / 0, D80/D96 144-147 / 0 / 0, half D64 134-136 /
//           0 / 0, bfloat D64 128 / 8 B / 8-12 B (a pressure spill, not an indexed array); float D128 118 / 0 / 0,
//           D64-D96 111-128 / 0 / 0. More registers, no local traffic: fewer resident threads, nothing to memory.
//   short tiles (decode_short_tiles; split kernel, worst over the masks): float 103-113 / 0 / 0, half/bfloat
//           D64 127-128 / 0 / 0, D80-D128 126-128 / 48 B / 0 (the 16-bit carry's frame, smaller than the 32-key
//           tile's 64-80 B). The 32-key specialisations are unchanged by the constant.
// The head dim is a template constant, so the loops over E and ROWS unroll. The loop over a tile's steps need not:
// the lane's SASS (nvdisasm, sm_90) showed the fp32 D128 kernel's 32 K steps as a rolled loop, one 16-byte load
// per iteration consumed at once by the next FMAs, so each SIMD group had one K load in flight, and its V steps
// at most two; the 16-bit kernels' K and V chunks went as 2-byte loads (a shim defect, fixed: docs/trust.md,
// "Vector operands"). Batched loads: a SIMD group issues the loads of DECODE_LOADS = 4 steps (4 x 512 contiguous
// bytes) before using the first, K and V alike, each one 16-byte load kept as raw bits (uint4) until its step
// converts it (unpack_chunk, metal/chunk_bits.h), so a batch costs 16 registers whatever the dtype. ptxas (sm_90,
// 32-key tiles, no mask): float D128 124 -> 117 registers, D64 104 -> 119; half/bfloat D128 128 / 118 -> 128,
// bfloat D64 118 (64 B frame) -> 152 (no frame: with a batch the steps unroll, so the carry's levels are
// constants); short tiles float D128 117, half/bfloat D128 139-145 batched (no frame), so 16-bit short tiles stay
// unbatched (LOADS = 1). Batches of 2: 106-136 registers; of 8: 128-162 with a 176 B frame in fp32.
// Lane figures before this layout (H200 anchor lane, not an Apple GPU; Hq32/Hk8, batch 1/4/8, KV 512-32768): fp32
// 0.89-1.3x the fastest anchor (MLX's and PyTorch's sdpa_vector / sdpa_vector_2pass), fp16/bf16 0.65-0.85x; B8
// N32768 D128 fp32 1216 us (2.15 GB of K and V: 1.8 TB/s, 42% of the lane's copy bandwidth), bf16 1120 us (MLX
// 2-pass 873 us): bound by instructions per key, not by memory. After (H100 lane, full run at 91853cf;
// decode Hq32/Hk8 D64/D128, batch 1/4/8, KV 512-32768, 16 points a dtype): bf16 0.96-1.70x
// the fastest anchor (below 1.0x at 1 point: B4 N512 D128 0.96x), fp16 0.98-1.77x (2 points), fp32 0.81-1.21x
// (12 points; B8 N32768 D128 1394 us against MLX's sdpa_vector 1298); past the L2 cache 32-46% of copy bandwidth
// in 16-bit, 42-53% in fp32, the fastest anchor 19-43% and 37-56%. Registers (ptxas sm_90, no-mask
// specialisations): MLX's sdpa_vector D128 32 a thread in every dtype (1024-thread threadgroups: a full SM, 64
// warps), its 2-pass first kernel 14, its GQA 2-pass kernel 64; ours 118-128 (16 warps an SM). MLX's kernels
// hide latency with resident threads where ours spend registers to do fewer instructions per key; in fp32, where
// the lane adds no bfloat conversions to MLX's per-query-head loads, theirs wins at 12 of 16 points. Read since
// (SASS, benches/lane_registers.py --loops): our fp32 split kernel runs a tile's 32 K steps as a rolled loop with one
// 16-byte load an iteration, so a SIMD group keeps one K load in flight, where MLX keeps 64 warps an SM with one
// each; and that run's 16-bit figures are of K and V loaded in 2-byte pieces (a lane shim defect, fixed since:
// docs/trust.md, "Vector operands"; MLX's sdpa_vector loads scalars and was not affected). Batched loads, timed
// side by side with the one-step loads (H100 lane, 2026-12-07, shim fixed in both; NVIDIA times, not Apple's):
// 1.28-1.71x in 16-bit D128 from B8 N512 on (B8 N32768 bf16 802 -> 470 us), 1.03-1.16x at fp16 D64, 1.11-1.95x in
// fp32 (B8 N32768 D128 1393 -> 714 us); 16-bit short tiles lost (0.86-0.92x at B1/B4 N512, B1 N2048), so they
// load one step at a time (0.97-1.01x the one-step kernel). Against the fastest anchor in the same runs: bf16
// D128 1.03-1.78x, fp16 0.93-1.95x (below 1.0x at B1 N2048 D64), fp32 1.03-1.97x; past the L2 cache 52-76% of
// copy bandwidth in 16-bit D128, 65-100% in fp32, the fastest anchor 18-55%. Prefill, K/V tile chunks copied as
// raw bits in the same session: 0.93-1.03x, not kept.
// The full run at f11f7ae (H100 lane, docs/anchor-lane.md; batched loads and merge in): decode against the fastest
// anchor bf16 0.87-2.00x (below 1.0x at B1 N2048 D64), fp16 0.73-2.06x, fp32 1.09-2.05x (B8 N32768 D128 745 us
// against MLX's sdpa_vector 1306); past the L2 cache 37-73% of copy in bf16, 38-74% in fp16, 65-96% in fp32, the
// fastest anchor 18-55%; prefill 1.05-1.34x the fastest anchor. fp16 is below 1.0x at B1 N512 D128, B4 N512
// D128 and B1 N2048 D128 (0.73-0.97x: 11.3 / 18.4 / 18.2 us where bf16 took 8.6 / 12.2 / 12.1 in the same run), as
// in the partial run at 58b434e (11.2 / 18.1 / 18.1 against 8.9 / 12.2 / 12.2): the three points that take short
// tiles in 16-bit. The cause is the footprint (Nsight Compute, B4 N512 D128): fp16's split kernel takes 142
// registers, 3 threadgroups an SM, so its 512 threadgroups run in 1.29 waves of 132 SMs; bf16's 128 (and a 16 B
// frame), 4 an SM, 0.97 waves. Fixed: half short tiles hold their query rows as loaded bits and carry on
// compile-time levels (HeldQuery; ptxas D128 142 -> 128 registers, no frame, D64 130 -> 118). Side by side (H100 lane,
// 2026-12-07, --ours-only, one device call; NVIDIA times, not Apple's): fp16 B1 N512 D128 11.0 -> 7.9 us, B4 N512
// D128 17.9 -> 11.7, B1 N2048 D128 17.8 -> 11.6, B1 N2048 D64 15.1 -> 10.1; bf16 B1 N2048 D64 15.1 -> 10.3 (bf16
// D128 1.01-1.03x); every other decode point 0.99-1.01x in every dtype (one fp32 point 0.91x, B8 N512 D128 15.6 ->
// 17.2 us, 17.1 in the full run at f11f7ae), geomean 1.04 over the 48. Against the anchor times of the full run at
// f11f7ae (not the same run): fp16 1.13-1.39x at those four points, bf16 B1 N2048 D64 1.27x.
// Why these sizes on Apple GPUs: SIMD width 32 -> 16-byte lane loads make one SIMD group load one 512-byte
// contiguous run, and a tile of 32 keys gives each lane one key after the fold; 4 SIMD groups (128 threads) per
// threadgroup keep the merge cheap and let a core hold several threadgroups; threadgroup memory is
// DECODE_SIMD_GROUPS * ROWS * (D + 2) floats, at most 8.2 KiB (D = 128) of the 32 KiB; the merge pass uses 256
// threads and 4 KiB.
// Bytes: q read once, out written once, the mask once, K and V once per KV head when G * Sq <= ROWS (every
// one-token GQA shape up to G = 4), else once per row group (from the cache when
// the neighbouring row groups run together). That is the minimum; the split adds 2 x rows x blocks x (D + 2) x 4
// bytes of partial results (written, read back), per threadgroup at most 1/8 of the K and V bytes it reads:
// B1 Hq32 Hk8 N4000 D128 bf16 runs 32 blocks of 128 keys, 256 threadgroups, 1.1 MB of partials against 16.4 MB of
// K and V (6.5%; 42 blocks of 96 keys and 8.5% before the whole-share rounding); B8 Hk8 N16000: 16 blocks, 0.8%.
#include <metal_stdlib>
using namespace metal;

#include "chunk_bits.h"

constant bool has_mask [[function_constant(0)]];       // an additive mask in T
constant bool has_bool_mask [[function_constant(1)]];  // a boolean mask: true = attend (SDPA's bool attn_mask)
// attention_decode_split's SIMD groups take tiles of DECODE_SHORT_TILE keys instead of DECODE_TILE: the host sets
// it where the grid is latency-bound (attention.py: decode_grid); the branch on it folds away in the pipeline.
constant bool decode_short_tiles [[function_constant(2)]];

constant constexpr int FRAG = 8;                      // simdgroup matrix side
constant constexpr float MASKED = -3.402823466e+38f;  // lowest finite float: the score of an invisible position

constant constexpr int PREFILL_SIMD_GROUPS = 4;
constant constexpr int PREFILL_BQ = PREFILL_SIMD_GROUPS * FRAG;  // query rows per threadgroup
constant constexpr int PREFILL_BK = 32;                          // key rows per staged block
constant constexpr int TILE_PAD_BYTES = 16;                      // staggers tile rows across memory banks
constant constexpr int TILE_LOAD_VEC = 4;                        // elements per thread in tile loads: a vec<T, 4>

constant constexpr int DECODE_SIMD_GROUPS = 4;   // SIMD groups of a decode threadgroup (they split its block)
constant constexpr int DECODE_VEC_BYTES = 16;    // bytes of a key row per lane: one 16-byte load
constant constexpr int DECODE_TILE = 32;         // keys a SIMD group scores at once: one per lane, once folded
constant constexpr int DECODE_SHORT_TILE = 8;    // the same under decode_short_tiles: one per 4 lanes
constant constexpr int DECODE_LOADS = 4;         // K or V steps a lane loads before using the first
constant constexpr int DECODE_ROWS = 4;          // query rows of a decode threadgroup (registers: see the header)
constant constexpr int MERGE_SIMD_GROUPS = 8;    // SIMD groups of a merge threadgroup (they split the blocks)
constant constexpr int MERGE_LOADS = 4;          // blocks a merge SIMD group loads before using the first
static_assert(PREFILL_SIMD_GROUPS * 32 == 128 && DECODE_SIMD_GROUPS * 32 == 128 && MERGE_SIMD_GROUPS * 32 == 256,
              "keep the max_total_threads_per_threadgroup literals below in step");

typedef simdgroup_matrix<float, 8, 8> frag_t;

// This lane's element coordinates inside an 8x8 simdgroup matrix (it holds (row, col) and (row, col + 1)).
inline int frag_row(uint lane) { return int((lane / 16) * 4 + (lane / 2) % 4); }
inline int frag_col(uint lane) { return int(((lane / 8) % 2) * 4 + (lane % 2) * 2); }

// The 4 floats of x in T, as one vector for a single store.
template <typename T>
inline vec<T, 4> to_vec4(float4 x) {
  vec<T, 4> y;
  y.x = T(x.x);
  y.y = T(x.y);
  y.z = T(x.z);
  y.w = T(x.w);
  return y;
}

// Sum and max over the four lanes that hold one matrix row.
inline float row_max(float x) {
  x = max(x, simd_shuffle_xor(x, ushort(1)));
  return max(x, simd_shuffle_xor(x, ushort(8)));
}
inline float row_sum(float x) {
  x += simd_shuffle_xor(x, ushort(1));
  return x + simd_shuffle_xor(x, ushort(8));
}

// scale = q_scale * score_scale with |q_scale| <= 1 and score_scale >= 1: q * q_scale cannot overflow, and
// (q . k) * score_scale overflows only where (q . k) * scale does.
inline float2 split_scale(float scale) {
  const float magnitude = abs(scale);
  return float2(copysign(min(magnitude, 1.0f), scale), max(magnitude, 1.0f));
}

// 2^-k with 2^k >= kv_len: probabilities (each <= 1) times this sum to at most 1 over all kv_len keys.
inline float probability_scale(uint kv_len) {
  const uint k = kv_len <= 1 ? 0u : 32u - clz(kv_len - 1);
  return as_type<float>((127u - k) << 23);
}

// Whether query position q_pos may see key position `key`.
inline bool is_visible(uint key, uint kv_len, bool causal, uint q_pos) {
  return key < kv_len && (!causal || key <= q_pos);
}

// Masks the scores of one 8-key block S[j] (this lane's two elements): adds the additive mask where visible, MASKED
// elsewhere; returns the visible elements as bits 2 * j + e.
template <typename T, int N>
inline uint mask_scores(thread frag_t* S, uint key0, int col, bool row_ok, uint kv_len, bool causal, uint q_pos,
                        const device T* mask_row, const device bool* bool_mask_row, uint mask_stride_k) {
  uint bits = 0;
  for (int j = 0; j < N; j++) {
    for (int e = 0; e < 2; e++) {
      uint key = key0 + j * FRAG + col + e;
      bool visible = row_ok && is_visible(key, kv_len, causal, q_pos);
      if (has_bool_mask && visible) {
        visible = bool_mask_row[key * mask_stride_k];
      }
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
inline float online_softmax(thread frag_t* S, uint visible, thread float& m_run, thread float& l_run,
                            float p_scale) {
  float block_max = MASKED;
  for (int j = 0; j < N; j++) {
    block_max = max(block_max, max(S[j].thread_elements()[0], S[j].thread_elements()[1]));
  }
  const float m_new = max(m_run, row_max(block_max));
  const float factor = metal::precise::exp(m_run - m_new);
  float block_sum = 0.0f;
  for (int j = 0; j < N; j++) {
    for (int e = 0; e < 2; e++) {
      float p = (visible >> (2 * j + e)) & 1u ? metal::precise::exp(S[j].thread_elements()[e] - m_new) * p_scale
                                              : 0.0f;
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
    // One whole-vector load per chunk (rows past kv_len are zeros); tile rows are 16-byte multiples apart.
    const device vec<T, 4>* s = reinterpret_cast<const device vec<T, 4>*>(src + size_t(row0 + r) * D + col);
    *reinterpret_cast<threadgroup vec<T, 4>*>(tile + r * LD + col) = to_vec4<T>(ok ? float4(*s) : float4(0.0f));
  }
}

template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(128)]] void attention_prefill(  // 128 = PREFILL_SIMD_GROUPS * 32
    const device T* q [[buffer(0)]],
    const device T* k [[buffer(1)]],
    const device T* v [[buffer(2)]],
    const device T* mask [[buffer(3), function_constant(has_mask)]],
    device T* out [[buffer(4)]],
    const device bool* bool_mask [[buffer(16), function_constant(has_bool_mask)]],
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
  static_assert(LD % 4 == 0, "tile rows hold whole vec<T, 4>s");
  threadgroup vec<T, 4> kv_tile_vecs[PREFILL_BK * LD / 4];  // declared as vectors: aligned for vector stores
  threadgroup T* kv_tile = reinterpret_cast<threadgroup T*>(kv_tile_vecs);

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

  const float2 scales = split_scale(scale);  // (q's factor, the scores' factor)
  const float p_scale = probability_scale(kv_len);
  frag_t Q[DF];
  load_queries<T, D>(Q, q + (q_head * q_len + q_index) * D, row_ok, scales.x, col);
  const size_t mask_off = size_t(batch) * mask_stride_b + size_t(head) * mask_stride_h +
                          size_t(row_ok ? q_index : 0) * mask_stride_q;
  const device T* mask_row = q;  // never read unless has_mask
  if (has_mask) {
    mask_row = mask + mask_off;
  }
  const device bool* bool_mask_row = nullptr;  // never read unless has_bool_mask
  if (has_bool_mask) {
    bool_mask_row = bool_mask + mask_off;
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
      S[j].thread_elements() *= scales.y;
    }
    const uint visible = mask_scores<T, KF>(S, k0, col, row_ok, kv_len, causal, q_pos, mask_row, bool_mask_row,
                                            mask_stride_k);
    const float factor = online_softmax<KF>(S, visible, m_run, l_run, p_scale);
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

// ---- decode: split-KV, one or two passes ----

// The decode lane layout for element type T and head dim D (see the header).
template <typename T, int D>
struct DecodeLayout {
  static constexpr int E = DECODE_VEC_BYTES / int(sizeof(T));  // elements of a key row per lane: 4 or 8
  static constexpr int CHUNKS = D / E;                          // 16-byte chunks in a row
  static constexpr int L = CHUNKS <= 8 ? 8 : (CHUNKS <= 16 ? 16 : 32);  // lanes per key (power of two)
  static constexpr int KPS = 32 / L;                            // keys per SIMD group step
  static constexpr int ROWS = DECODE_ROWS;                      // query rows per threadgroup
  static constexpr bool FULL = L == CHUNKS;                     // every lane holds a chunk (D = 64, 128)
};

// A SIMD group's tile of TILE keys (DECODE_TILE or DECODE_SHORT_TILE) in layout Lay: STEPS loads of KPS keys.
// The reduce-scatter folds over the steps (FOLDS = log2 STEPS shuffles deep) leave lane (slot, chunk) the partial
// score of step chunk % STEPS summed over STEPS of the key's L lanes; a butterfly over the lane offsets STEPS ..
// L / 2 adds the other lanes' shares. Then each key's score sits in REPLICAS = L / STEPS = 32 / TILE lanes, and
// the one with chunk < STEPS owns it (the others count as holding no key). DECODE_TILE: STEPS = L, no butterfly,
// one key per lane. DECODE_SHORT_TILE: 2 (half D64), 4 (half D80-D128, float D64) or 8 (float D80-D128) steps,
// 2 butterfly shuffles, 4 lanes per key.
template <typename T, int D, int TILE>
struct DecodeTile {
  typedef DecodeLayout<T, D> Lay;
  static constexpr int STEPS = TILE / Lay::KPS;
  static constexpr int FOLDS = STEPS == 2 ? 1 : (STEPS == 4 ? 2 : (STEPS == 8 ? 3 : (STEPS == 16 ? 4 : 5)));
  static constexpr int REPLICAS = Lay::L / STEPS;  // lanes holding one key's score after the butterfly
  static_assert(STEPS * Lay::KPS == TILE && (1 << FOLDS) == STEPS && STEPS <= Lay::L,
                "a tile is a power-of-two number of steps of KPS keys, at most one key per lane once folded");
};

// This lane's 16 bytes of a q, K or V row at p (E elements as stored: one 16-byte load; unpack_chunk makes them
// fp32); zeros when !ok. The host requires q, k and v 16-byte aligned, and every row is whole 16-byte chunks.
template <typename T>
inline uint4 load_bits(const device T* p, bool ok) {
  return ok ? *reinterpret_cast<const device uint4*>(p) : uint4(0);
}

// Sum over the lanes that differ in lane bits FROM .. TO / 2 (xor offsets FROM, 2 FROM, .., < TO): with FROM = L,
// TO = 32, the key slots (lanes holding one chunk of different keys); with FROM = STEPS, TO = L, the lanes of one
// key that a short tile's folds left apart.
template <int FROM, int TO>
inline float lane_sum(float x) {
  for (ushort o = FROM; o < TO; o *= 2) {
    x += simd_shuffle_xor(x, o);
  }
  return x;
}

// One reduce-scatter step over xor offset o (o < L, so both lanes hold chunks of the same keys). a and b are this
// lane's partial sums for two groups of keys (a the earlier steps); the lane keeps the group its bit o selects,
// hands the other to its partner and adds the partner's share of the kept one: one shuffle halves the values per
// lane and doubles the lanes each value sums over.
inline float fold(float a, float b, ushort o, uint lane) {
  const bool hi = (lane & o) != 0;
  const float keep = hi ? b : a, send = hi ? a : b;
  return keep + simd_shuffle_xor(send, o);
}

// How a decode lane holds its chunk of a query row (E elements) in tiles of TILE keys. fp32 copies (`word` float,
// E of them) times q's share of the scale: a bfloat q . k can overflow fp32 where (q * q_scale) . k does not
// (split_scale). half in short tiles keeps the chunk as loaded (`word` uint4, one: 4 registers a row where the
// copies take 8), converted where a score uses it; its scores take the whole scale, as |q . k| <= D * 65504^2
// cannot overflow fp32. Why only there (ptxas sm_90, no mask): half short tiles at D128 fit 128 registers this way
// (decode_tile's carry), where 32-key tiles held as bits took 148 (168 with the compile-time carry) against 128.
template <typename T, int TILE>
struct HeldQuery {
  typedef float word;
  static constexpr int constant WORDS = DECODE_VEC_BYTES / int(sizeof(T));
};
template <>
struct HeldQuery<half, DECODE_SHORT_TILE> {
  typedef uint4 word;
  static constexpr int constant WORDS = 1;
};

// A row chunk loaded as `bits`, in its held form: fp32 copies times q_scale, or the bits themselves.
template <typename T>
inline void hold_query(uint4 bits, float q_scale, thread float* q) {
  unpack_chunk<T>(bits, q);
  for (int e = 0; e < ChunkOf<T>::N; e++) {
    q[e] *= q_scale;
  }
}
template <typename T>
inline void hold_query(uint4 bits, float, thread uint4* q) {
  *q = bits;
}

// One row's partial score on this lane: its held query chunk times the key chunk kf (E fp32 values), in order.
template <typename T, int E>
inline float query_dot(thread const float* q, thread const float* kf) {
  float s = 0.0f;
  for (int e = 0; e < E; e++) {
    s += q[e] * kf[e];
  }
  return s;
}
template <typename T, int E>
inline float query_dot(thread const uint4* q, thread const float* kf) {
  float qf[E];
  unpack_chunk<T>(*q, qf);
  return query_dot<T, E>(qf, kf);
}

// What a decode threadgroup knows about its query rows.
template <int ROWS>
struct DecodeRows {
  uint count;           // valid rows (the last row group of a KV head may be partial)
  size_t first;         // global index of row 0 in q / out viewed as [B * Hq * Sq, D]
  uint q_pos[ROWS];     // absolute position of each row's query (causal)
  uint mask_off[ROWS];  // element offset of each row's mask row
};

// One tile of TILE keys (DECODE_TILE or DECODE_SHORT_TILE) for one SIMD group: step i (i < STEPS) reads keys
// tile0 + i * KPS + slot, K and V at k_tile / v_tile (this lane's chunk of the tile's first keys). GUARD: the
// tile may reach past k_end (only the block's last tile), so loads and visibility check it; a full tile has no
// per-key check. CHECK_ROWS: the row group is partial (rows.count < ROWS), so every row loop stops at rows.count;
// a full row group has no row check.
//   1. Scores: per step and row E FMAs; each new partial is folded into the pending ones like a binary counter
//      (step i folds once per trailing one bit of i), so after the STEPS steps this lane holds the score of key
//      tile0 + (chunk % STEPS) * KPS + slot (a short tile adds its other lanes' shares: DecodeTile): STEPS - 1
//      folds for STEPS keys' sums instead of log2 L shuffles per key.
//   2. Softmax, once per tile and row: the owning lanes' scores are TILE different keys, so mask, max (one
//      simd_max), rescale of O and l, and exp are per tile or per lane, not per (lane, key).
//   3. O += p v: step i broadcasts its keys' p from the lanes that own them (one shuffle per row) to their V chunks.
template <typename T, int D, int TILE, bool GUARD, bool CHECK_ROWS>
inline void decode_tile(uint tile0, uint k_end, const device T* k_tile, const device T* v_tile, uint lane,
                        bool active, thread const typename HeldQuery<T, TILE>::word* q, thread float* o,
                        thread float* m, thread float* l, thread const DecodeRows<DECODE_ROWS>& rows, bool causal,
                        const device T* mask,
                        const device bool* bool_mask, uint mask_stride_k, float score_scale, float p_scale) {
  typedef DecodeLayout<T, D> Lay;
  typedef DecodeTile<T, D, TILE> Tile;
  constexpr int ROWS = Lay::ROWS, E = Lay::E, L = Lay::L, KPS = Lay::KPS, STEPS = Tile::STEPS;
  constexpr int FOLDS = Tile::FOLDS;
  // Steps whose loads are issued together. 16-bit short tiles load one step at a time: batched, they took 139-145
  // registers (126-128 unbatched) and ran 0.86-0.92x the unbatched kernel on the lane (see the header).
  constexpr int LOADS = sizeof(T) == 2 && TILE == DECODE_SHORT_TILE ? 1 : DECODE_LOADS;
  constexpr int BATCH = STEPS < LOADS ? STEPS : LOADS;
  const uint chunk = lane % L, slot = lane / L;

  float pend[FOLDS + 1][ROWS];  // pend[j]: the partial of 2^j steps, summed over 2^j lanes
  for (int i0 = 0; i0 < STEPS; i0 += BATCH) {
    uint4 k_bits[BATCH];  // the batch's loads, all issued before the first is used
    for (int b = 0; b < BATCH; b++) {
      const int i = i0 + b;
      k_bits[b] = load_bits(k_tile + size_t(i * KPS) * D, active && (!GUARD || tile0 + i * KPS + slot < k_end));
    }
    for (int b = 0; b < BATCH; b++) {
      const int i = i0 + b;
      float kf[E];
      unpack_chunk<T>(k_bits[b], kf);
      for (int r = 0; r < ROWS; r++) {
        if (CHECK_ROWS && uint(r) >= rows.count) {  // uniform over the threadgroup
          break;
        }
        float s = query_dot<T, E>(q + r * HeldQuery<T, TILE>::WORDS, kf);
        // Carry like a binary counter: fold into pend[j] while bit j of i is set, then park the sum at the first
        // clear bit. fp32: j runs over compile-time levels, so pend stays in registers (118-128 registers at D128,
        // no local memory; the data-dependent loop kept it in a 96-112 B frame with spills). 16-bit: the
        // data-dependent loop, which keeps pend in a frame (64-80 B) but the kernel at 121-128 registers, where the
        // compile-time levels took it to 145-147 and fewer threadgroups fit. On the H100 lane the 16-bit kernel ran
        // B4 N8192 D128 bf16 in 115 us this way against 150 us with the compile-time levels; fp32 B1 N8192 in 52 us
        // with them against 97 us before (docs/anchor-lane.md; NVIDIA times, not Apple's). Short tiles keep the
        // choice for bfloat: 128 registers and a 16 B frame (ptxas sm_90, no mask). half short tiles hold their
        // query as bits (HeldQuery) and take the compile-time levels: D128 128 registers, no frame (with the
        // data-dependent loop 125 and a 48 B frame). Float query copies gave 142 and no frame (ptxas unrolled the
        // four steps and resolved the loop's levels), 3 threadgroups per SM on the lane instead of 4: B1 and
        // B4 N512 D128's 512 threadgroups ran in 1.29 waves of 132 SMs, bfloat's in 0.97 (Nsight Compute), and fp16
        // took 11.0 / 17.9 / 18.0 us at B1 N512 / B4 N512 / B1 N2048 D128 where bf16 took 8.1 / 11.9 / 11.8.
        if (sizeof(T) == 4 || HeldQuery<T, TILE>::WORDS == 1) {
          bool parked = false;
          for (int j = 0; j <= FOLDS; j++) {
            if (!parked) {
              if (j < FOLDS && ((i >> j) & 1)) {
                s = fold(pend[j][r], s, ushort(1 << j), lane);
              } else {
                pend[j][r] = s;
                parked = true;
              }
            }
          }
        } else {
          int j = 0;
          for (; (i >> j) & 1; j++) {
            s = fold(pend[j][r], s, ushort(1 << j), lane);
          }
          pend[j][r] = s;
        }
      }
    }
  }

  const uint key = tile0 + (chunk % STEPS) * KPS + slot;  // this lane's key, whose score pend[FOLDS] holds
  const bool owner = Tile::REPLICAS == 1 || chunk < uint(STEPS);  // one lane per key counts it
  const bool in_range = owner && (!GUARD || key < k_end);
  float p[ROWS];
  for (int r = 0; r < ROWS; r++) {
    if (CHECK_ROWS && uint(r) >= rows.count) {
      break;
    }
    float s = lane_sum<STEPS, L>(pend[FOLDS][r]) * score_scale;  // no shuffle for DECODE_TILE
    bool visible = in_range && (!causal || key <= rows.q_pos[r]);
    if (has_bool_mask && visible) {
      visible = bool_mask[rows.mask_off[r] + key * mask_stride_k];
    }
    if (has_mask && visible) {
      s += float(mask[rows.mask_off[r] + key * mask_stride_k]);
    }
    s = visible ? s : MASKED;
    // The SIMD group's running max; factor is exactly 1 when it does not grow, so no branch.
    const float m_new = max(m[r], simd_max(s));
    const float factor = metal::precise::exp(m[r] - m_new);
    m[r] = m_new;
    for (int e = 0; e < E; e++) {
      o[r * E + e] *= factor;
    }
    p[r] = visible ? metal::precise::exp(s - m_new) * p_scale : 0.0f;
    l[r] = l[r] * factor + p[r];  // this lane's keys' share; the lanes are summed at the end
  }

  for (int i0 = 0; i0 < STEPS; i0 += BATCH) {
    uint4 v_bits[BATCH];
    for (int b = 0; b < BATCH; b++) {
      const int i = i0 + b;
      v_bits[b] = load_bits(v_tile + size_t(i * KPS) * D, active && (!GUARD || tile0 + i * KPS + slot < k_end));
    }
    for (int b = 0; b < BATCH; b++) {
      const int i = i0 + b;
      float vf[E];
      unpack_chunk<T>(v_bits[b], vf);
      const ushort src = ushort(slot * L + i);  // the lane holding key tile0 + i * KPS + slot after the fold
      for (int r = 0; r < ROWS; r++) {
        if (CHECK_ROWS && uint(r) >= rows.count) {
          break;
        }
        const float pi = simd_shuffle(p[r], src);
        for (int e = 0; e < E; e++) {
          o[r * E + e] += pi * vf[e];
        }
      }
    }
  }
}

// A SIMD group's share of the keys [k_begin, k_end) in tiles of TILE keys: SIMD group sg takes the tiles
// k_begin + (i * DECODE_SIMD_GROUPS + sg) * TILE, i = 0, 1, ...; full tiles run unguarded, only a tile reaching
// past k_end (the block's last: the host makes a block whole tiles) checks it. q_lane is this lane's chunk of the
// row group's first query row; the lane holds its rows' chunks as HeldQuery says.
template <typename T, int D, int TILE>
inline void decode_tiles(uint k_begin, uint k_end, uint sg, const device T* q_lane, const device T* k_lane,
                         const device T* v_lane, uint lane, bool active, thread float* o, thread float* m,
                         thread float* l, thread const DecodeRows<DECODE_ROWS>& rows, bool causal,
                         const device T* mask, const device bool* bool_mask, uint mask_stride_k, float scale,
                         float p_scale) {
  typedef HeldQuery<T, TILE> Held;
  // (q's factor, the scores' factor); a query held as loaded leaves the whole scale to the scores.
  const float2 scales = Held::WORDS == 1 ? float2(1.0f, scale) : split_scale(scale);
  const float score_scale = scales.y;
  typename Held::word q[DECODE_ROWS * Held::WORDS];  // row r's at [r * WORDS, r * WORDS + WORDS)
  for (int r = 0; r < DECODE_ROWS; r++) {
    const uint4 bits = load_bits(q_lane + min(uint(r), rows.count - 1) * D, active);
    hold_query<T>(bits, scales.x, q + r * Held::WORDS);
  }
  constexpr int TG_TILES = DECODE_SIMD_GROUPS * TILE;
  uint tile0 = k_begin + sg * TILE;
  const bool all_rows = rows.count == uint(DECODE_ROWS);  // the usual GQA shape: no row checks in the tiles
  for (; tile0 + TILE <= k_end; tile0 += TG_TILES) {
    const device T* k_tile = k_lane + size_t(tile0) * D;
    const device T* v_tile = v_lane + size_t(tile0) * D;
    if (all_rows) {
      decode_tile<T, D, TILE, false, false>(tile0, k_end, k_tile, v_tile, lane, active, q, o, m, l, rows, causal,
                                            mask, bool_mask, mask_stride_k, score_scale, p_scale);
    } else {
      decode_tile<T, D, TILE, false, true>(tile0, k_end, k_tile, v_tile, lane, active, q, o, m, l, rows, causal,
                                           mask, bool_mask, mask_stride_k, score_scale, p_scale);
    }
  }
  if (tile0 < k_end) {  // the block's last tile reaches past its end: the one guarded tile
    decode_tile<T, D, TILE, true, true>(tile0, k_end, k_lane + size_t(tile0) * D, v_lane + size_t(tile0) * D, lane,
                                        active, q, o, m, l, rows, causal, mask, bool_mask, mask_stride_k,
                                        score_scale, p_scale);
  }
}

// Pass 1 (or the only pass): the rows of one row group of one KV head over keys [block * block_len, ... +
// block_len) clipped to kv_len. SPLIT writes the block's unnormalised (m, l, O) per row into the partial buffers;
// otherwise the block is the whole KV length and the normalised result goes to out.
template <typename T, int D, bool SPLIT>
inline void decode_block(const device T* q, const device T* k, const device T* v, const device T* mask,
                         const device bool* bool_mask,
                         device T* out, device float* o_part, device float* m_part, device float* l_part,
                         float scale, uint num_q_heads, uint gqa_factor, uint q_len, uint kv_capacity, uint kv_len,
                         bool causal, uint4 mask_strides, uint block_len, uint rows_per_group, uint3 tg, uint lid,
                         uint lane, uint sg, threadgroup float* tg_m, threadgroup float* tg_l,
                         threadgroup float* tg_o) {
  typedef DecodeLayout<T, D> Lay;
  constexpr int ROWS = Lay::ROWS, E = Lay::E;
  const uint group_rows = gqa_factor * q_len;  // rows sharing one KV head, consecutive in q
  // Rows per threadgroup: ROWS, or fewer where the grid would be too small to keep the GPU busy (see the header).
  const uint per_group = clamp(rows_per_group, 1u, uint(ROWS));
  const uint row_groups = (group_rows + per_group - 1) / per_group;
  // The row groups of one block are neighbours in the grid, so they run together and share its K/V in the cache.
  const uint block = tg.x / row_groups, row0 = (tg.x % row_groups) * per_group;
  const uint kv_head = tg.y, batch = tg.z;
  const uint num_kv_heads = num_q_heads / gqa_factor;

  DecodeRows<ROWS> rows;
  rows.count = min(per_group, group_rows - row0);
  rows.first = (size_t(batch) * num_q_heads + kv_head * gqa_factor) * q_len + row0;
  for (int r = 0; r < ROWS; r++) {
    const uint gr = row0 + min(uint(r), rows.count - 1);
    const uint head = kv_head * gqa_factor + gr / q_len, token = gr % q_len;
    rows.q_pos[r] = kv_len - q_len + token;
    rows.mask_off[r] = batch * mask_strides.x + head * mask_strides.y + token * mask_strides.z;
  }

  const uint chunk = lane % Lay::L, slot = lane / Lay::L;
  const uint d0 = chunk * E;
  const bool active = Lay::FULL || int(chunk) < Lay::CHUNKS;
  const float p_scale = probability_scale(kv_len);
  float o[ROWS * E], m[ROWS], l[ROWS];  // row r's elements at [r * E, r * E + E)
  for (int r = 0; r < ROWS; r++) {
    for (int e = 0; e < E; e++) {
      o[r * E + e] = 0.0f;
    }
    m[r] = MASKED;
    l[r] = 0.0f;
  }

  const device T* q_lane = q + rows.first * D + d0;
  const size_t kv_base = (size_t(batch) * num_kv_heads + kv_head) * kv_capacity;
  const uint k_begin = block * block_len, k_end = min(kv_len, k_begin + block_len);
  const device T* k_lane = k + (kv_base + slot) * D + d0;
  const device T* v_lane = v + (kv_base + slot) * D + d0;
  // decode_short_tiles is a function constant: one of the two calls is compiled into the pipeline. The one-pass
  // kernel ignores it: the host keeps one-pass plans on 32-key tiles (a shorter block would add the merge pass).
  if (SPLIT && decode_short_tiles) {
    decode_tiles<T, D, DECODE_SHORT_TILE>(k_begin, k_end, sg, q_lane, k_lane, v_lane, lane, active, o, m, l, rows,
                                          causal, mask, bool_mask, mask_strides.w, scale, p_scale);
  } else {
    decode_tiles<T, D, DECODE_TILE>(k_begin, k_end, sg, q_lane, k_lane, v_lane, lane, active, o, m, l, rows, causal,
                                    mask, bool_mask, mask_strides.w, scale, p_scale);
  }

  // Sum l over the lanes (each holds its own keys' share) and O over the key slots (lanes holding one chunk of
  // different keys); they all share m. Then hand (m, l, O) to the threadgroup.
  for (int r = 0; r < ROWS; r++) {
    if (uint(r) >= rows.count) {  // uniform over the threadgroup
      break;
    }
    l[r] = simd_sum(l[r]);
    for (int e = 0; e < E; e++) {
      o[r * E + e] = lane_sum<Lay::L, 32>(o[r * E + e]);
    }
  }
  if (lane == 0) {
    for (int r = 0; r < ROWS; r++) {
      tg_m[sg * ROWS + r] = m[r];
      tg_l[sg * ROWS + r] = l[r];
    }
  }
  if (slot == 0 && active) {
    for (int r = 0; r < ROWS; r++) {
      for (int e = 0; e < E; e++) {
        tg_o[(sg * ROWS + r) * D + d0 + e] = o[r * E + e];
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);

  // Merge the SIMD groups: each thread takes 4-float chunks of the ROWS x D result.
  constexpr int C4 = D / 4;
  const uint blocks = (kv_len + block_len - 1) / block_len;
  for (uint idx = lid; idx < uint(ROWS * C4); idx += DECODE_SIMD_GROUPS * 32) {
    const uint r = idx / C4, c = idx % C4;
    if (r >= rows.count) {
      break;
    }
    float m_all = MASKED;
    for (int s = 0; s < DECODE_SIMD_GROUPS; s++) {
      m_all = max(m_all, tg_m[s * ROWS + r]);
    }
    float l_all = 0.0f;
    float4 acc = float4(0.0f);
    for (int s = 0; s < DECODE_SIMD_GROUPS; s++) {
      const float w = metal::precise::exp(tg_m[s * ROWS + r] - m_all);
      l_all += tg_l[s * ROWS + r] * w;
      const threadgroup float* src = tg_o + (s * ROWS + r) * D + 4 * c;
      acc += w * float4(src[0], src[1], src[2], src[3]);
    }
    const size_t row = rows.first + r;
    if (SPLIT) {
      reinterpret_cast<device float4*>(o_part + (row * blocks + block) * D)[c] = acc;
      if (c == 0) {
        m_part[row * blocks + block] = m_all;
        l_part[row * blocks + block] = l_all;
      }
    } else {
      // l_all = 0 (every visible score -inf): 0 / 0 = NaN, as softmax gives.
      reinterpret_cast<device vec<T, 4>*>(out + row * D)[c] = to_vec4<T>(acc / l_all);
    }
  }
}

#define DECODE_PARAMS                                                               \
  const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],                 \
      const device T* v [[buffer(2)]],                                              \
      const device T* mask [[buffer(3), function_constant(has_mask)]],              \
      constant float& scale [[buffer(5)]], constant uint& num_q_heads [[buffer(6)]], \
      constant uint& gqa_factor [[buffer(7)]], constant uint& q_len [[buffer(8)]],  \
      constant uint& kv_capacity [[buffer(9)]], constant uint& kv_len [[buffer(10)]], \
      constant bool& causal [[buffer(11)]], constant uint& mask_stride_b [[buffer(12)]], \
      constant uint& mask_stride_h [[buffer(13)]], constant uint& mask_stride_q [[buffer(14)]], \
      constant uint& mask_stride_k [[buffer(15)]], constant uint& block_len [[buffer(16)]], \
      constant uint& rows_per_group [[buffer(17)]],                                 \
      uint3 tg [[threadgroup_position_in_grid]], uint lid [[thread_index_in_threadgroup]], \
      uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]

// The one-pass decode: one block spans the KV length (block_len >= kv_len); writes out.
template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(128)]] void attention_decode(  // 128 = DECODE_SIMD_GROUPS * 32
    DECODE_PARAMS, device T* out [[buffer(4)]],
    const device bool* bool_mask [[buffer(18), function_constant(has_bool_mask)]]) {
  typedef DecodeLayout<T, D> Lay;
  threadgroup float tg_m[DECODE_SIMD_GROUPS * Lay::ROWS];
  threadgroup float tg_l[DECODE_SIMD_GROUPS * Lay::ROWS];
  threadgroup float tg_o[DECODE_SIMD_GROUPS * Lay::ROWS * D];
  const uint4 strides = uint4(mask_stride_b, mask_stride_h, mask_stride_q, mask_stride_k);
  decode_block<T, D, false>(q, k, v, mask, bool_mask, out, nullptr, nullptr, nullptr, scale, num_q_heads, gqa_factor,
                            q_len, kv_capacity, kv_len, causal, strides, block_len, rows_per_group, tg, lid, lane,
                            sg, tg_m, tg_l, tg_o);
}

// Pass 1 of the split decode: block tg.x of the KV length; writes the block's partial (m, l, O) per row.
template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(128)]] void attention_decode_split(  // 128 = DECODE_SIMD_GROUPS * 32
    DECODE_PARAMS, device float* o_part [[buffer(4)]], device float* m_part [[buffer(18)]],
    device float* l_part [[buffer(19)]],
    const device bool* bool_mask [[buffer(20), function_constant(has_bool_mask)]]) {
  typedef DecodeLayout<T, D> Lay;
  threadgroup float tg_m[DECODE_SIMD_GROUPS * Lay::ROWS];
  threadgroup float tg_l[DECODE_SIMD_GROUPS * Lay::ROWS];
  threadgroup float tg_o[DECODE_SIMD_GROUPS * Lay::ROWS * D];
  const uint4 strides = uint4(mask_stride_b, mask_stride_h, mask_stride_q, mask_stride_k);
  decode_block<T, D, true>(q, k, v, mask, bool_mask, nullptr, o_part, m_part, l_part, scale, num_q_heads,
                           gqa_factor, q_len, kv_capacity, kv_len, causal, strides, block_len, rows_per_group, tg,
                           lid, lane, sg, tg_m, tg_l, tg_o);
}

// Pass 2 of the split decode: one threadgroup per query row merges the row's `blocks` partial results.
// M = max m_b, l = sum l_b exp(m_b - M), out = sum O_b exp(m_b - M) / l; a block that saw nothing has m_b =
// MASKED, l_b = 0 and O_b = 0, so it weighs 0 unless every block is empty (then 0 / 0 = NaN, as softmax gives).
template <typename T, int D>
[[kernel, max_total_threads_per_threadgroup(256)]] void attention_decode_merge(  // 256 = MERGE_SIMD_GROUPS * 32
    const device float* o_part [[buffer(0)]],
    const device float* m_part [[buffer(1)]],
    const device float* l_part [[buffer(2)]],
    device T* out [[buffer(3)]],
    constant uint& blocks [[buffer(4)]],
    uint row [[threadgroup_position_in_grid]],
    uint lane [[thread_index_in_simdgroup]],
    uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int C4 = D / 4;  // 4-float chunks per row: at most 32, one per lane
  threadgroup float4 tg_o[MERGE_SIMD_GROUPS * C4];
  const device float* m_row = m_part + size_t(row) * blocks;
  const device float* l_row = l_part + size_t(row) * blocks;
  const device float4* o_row = reinterpret_cast<const device float4*>(o_part + size_t(row) * blocks * D);

  float m_all = MASKED;
  for (uint b = lane; b < blocks; b += 32) {
    m_all = max(m_all, m_row[b]);
  }
  m_all = simd_max(m_all);
  float l_all = 0.0f;
  for (uint b = lane; b < blocks; b += 32) {
    l_all += l_row[b] * metal::precise::exp(m_row[b] - m_all);
  }
  l_all = simd_sum(l_all);

  // SIMD group sg sums blocks sg, sg + MERGE_SIMD_GROUPS, ...; lane c owns chunk c of the row. The loads of
  // MERGE_LOADS blocks are issued before the first is used, so they are in flight together (one at a time, a
  // batch-1 long context waited on 16 of them in turn: 128 blocks at N32768); the sum's order is unchanged.
  // H100 lane, 2026-12-07, against the one-at-a-time loop: decode B1 1.03-1.06x at N8192 and N32768 (bf16, fp32;
  // B1 N32768 D64 bf16 62.7 -> 60.1 us), 1.02-1.03x at N512 and N2048 D128 bf16.
  float4 acc = float4(0.0f);
  if (lane < uint(C4)) {
    constexpr uint BATCH_STRIDE = MERGE_LOADS * MERGE_SIMD_GROUPS;
    uint b = sg;
    for (; b + (MERGE_LOADS - 1) * MERGE_SIMD_GROUPS < blocks; b += BATCH_STRIDE) {
      float m_b[MERGE_LOADS];
      float4 o_b[MERGE_LOADS];
      for (int i = 0; i < MERGE_LOADS; i++) {
        const uint bi = b + uint(i) * MERGE_SIMD_GROUPS;
        m_b[i] = m_row[bi];
        o_b[i] = o_row[size_t(bi) * C4 + lane];
      }
      for (int i = 0; i < MERGE_LOADS; i++) {
        acc += metal::precise::exp(m_b[i] - m_all) * o_b[i];
      }
    }
    for (; b < blocks; b += MERGE_SIMD_GROUPS) {
      acc += metal::precise::exp(m_row[b] - m_all) * o_row[size_t(b) * C4 + lane];
    }
    tg_o[sg * C4 + lane] = acc;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0 && lane < uint(C4)) {
    for (int s = 1; s < MERGE_SIMD_GROUPS; s++) {
      acc += tg_o[s * C4 + lane];
    }
    reinterpret_cast<device vec<T, 4>*>(out + size_t(row) * D)[lane] = to_vec4<T>(acc / l_all);
  }
}

// Host names: attention_<prefill|decode|decode_split|decode_merge>_d<D>_<dtype>.
#define INSTANTIATE_ATTENTION(name, T, D)                                                                           \
  template [[host_name("attention_prefill_d" #D "_" #name)]] [[kernel]] decltype(attention_prefill<T, D>)         \
      attention_prefill<T, D>;                                                                                      \
  template [[host_name("attention_decode_d" #D "_" #name)]] [[kernel]] decltype(attention_decode<T, D>)           \
      attention_decode<T, D>;                                                                                       \
  template [[host_name("attention_decode_split_d" #D "_" #name)]] [[kernel]] decltype(attention_decode_split<T, D>) \
      attention_decode_split<T, D>;                                                                                 \
  template [[host_name("attention_decode_merge_d" #D "_" #name)]] [[kernel]] decltype(attention_decode_merge<T, D>) \
      attention_decode_merge<T, D>;

#define INSTANTIATE_ATTENTION_ALL_DIMS(name, T) \
  INSTANTIATE_ATTENTION(name, T, 64)            \
  INSTANTIATE_ATTENTION(name, T, 80)            \
  INSTANTIATE_ATTENTION(name, T, 96)            \
  INSTANTIATE_ATTENTION(name, T, 128)

INSTANTIATE_ATTENTION_ALL_DIMS(float32, float)
INSTANTIATE_ATTENTION_ALL_DIMS(float16, half)
INSTANTIATE_ATTENTION_ALL_DIMS(bfloat16, bfloat)
