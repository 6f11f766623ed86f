"""What every backend of every op computes at the edges: non-finite inputs, values near the dtype's range, scalars.
Appended to docs/kernels.md by `python -m mpskernels.docs`; tests/fuzz checks the emulator against it."""

NUMERICS = """
## Numerical contract (every backend)

Each op computes PyTorch's documented formula for it; the kernel, its PyTorch reference (the fallback) and every
backend follow the same rules. Results are compared with an exact (float64) evaluation of the formula, within the
dtype's tolerance (fp32 1e-5, fp16 1e-3, bf16 1e-2 relative). `tests/fuzz` checks the emulator against float64
oracles written from the rules below.

**Scalars** are checked once, up front, for every backend: a float argument must be a finite float32 value
(|v| <= 3.4028235e38; `scale = inf` or `3.5e38` is refused), an int an int, a bool a bool; `eps` must be >= 0.
Errors name the op and the argument (`mpskernels.softmax: scale must be a finite float32 value ...`).

**Element-wise activations** (`silu`, `gelu`, `mish`, `hardswish`, the gated units, `bias_act`): the formula's
value rounded to the dtype, with IEEE arithmetic at the non-finite points: NaN gives NaN; +inf gives the
formula's value (+inf for SiLU, GELU, Mish and HardSwish; 6 for ReLU6, 1 for sigmoid and tanh); -inf gives
-inf * 0 = NaN for SiLU, GELU (both approximations), Mish and HardSwish (0 for ReLU, ReLU6 and sigmoid, -1 for
tanh). A finite input never overflows where the formula does not (`hardswish(3e38) = 3e38`, `gelu(3e38) = 3e38`).
Gated units multiply by b in IEEE arithmetic (inf * 0 = NaN).

**softmax, log_softmax**: the logits `x * scale + mask` are fp32 values (each step rounded; beyond +-FLT_MAX a
logit is +-inf; with `softcap`, `softcap * tanh(x * scale / softcap)` before the mask, so +-inf in x gives
+-softcap), then the formula in IEEE arithmetic: a row with a +inf or NaN logit is NaN throughout; a -inf
logit has probability 0 (log-probability -inf); a row whose logits are all -inf is NaN.

**layer_norm, add_layer_norm, group_norm**: the mean and biased variance of the exact values. A row (group) of
finite values gives the formula's finite value whatever its magnitude (values near +-3.4e38 in bf16 or fp32,
tiny values at eps = 0); a constant row gives exactly `0 * weight + bias`, and NaN at eps = 0. A row holding inf or
NaN is NaN throughout. add_layer_norm first rounds `x + residual` to the dtype (inf where that overflows).

**rms_norm, add_rms_norm**: `x * rsqrt(mean(x^2) + eps)` with the mean of squares in fp32: rows of finite values
beyond about 1e19 in magnitude (their squares overflow fp32) are outside the contract; inf and NaN follow IEEE
arithmetic.

**attention**: the scores `q k^T * scale (+ mask)` are fp32 values (beyond +-FLT_MAX they are +-inf), then softmax
as above and the weighted sum of v. Every result the plain formula gets finite in fp32 is finite (the scale and
the normalisation are ordered so that neither `q * scale` nor the unnormalised sum of `p * v` overflows). Outside
the contract: a row where some key's dot product may overflow on the way (sum of |q_i k_i| * max(|scale|, 1)
beyond FLT_MAX: the fp32 sum is inf or NaN depending on its order, as in PyTorch's matmul), and inf or NaN in k or
v at a key a query cannot see (causally after it, hidden by the boolean mask, or given -inf by the additive
mask): such a row is NaN or the result without that key, depending on which blocks the kernel skips. Positions past
`kv_len` are never read. A row whose keys are all hidden (or whose scores are all -inf) is NaN.

**rope**: `x1 * cos - x2 * sin`, `x2 * cos + x1 * sin` in fp32, rounded to the dtype (IEEE for non-finite values).

**kv_cache_append**: exact copies. Refused, naming the op and the argument: caches that share memory with each
other, new rows that share memory with a cache, a cache with internal overlap (an expanded view), and a cache that
requires grad while grad mode is on.

**rope_kv_append**: rope's values (above) in q_out and k_out; the k cache rows hold exactly k_out's values, the v
cache rows exact copies of v; nothing else in the caches changes. Refused like kv_cache_append, over every tensor
it writes (q_out, k_out, k_cache, v_cache: internal overlap, requires grad under grad mode, two of them sharing
memory) and every one it reads (q, k, v, cos, sin, position_ids sharing memory with one it writes).
"""
