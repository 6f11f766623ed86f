"""Device ops per LLM decode token: eager, mpskernels.optimize() and torch.compile(backend="mpskernels") (issue 18).

Hugging Face decoder models are built from configs with random weights (no downloads) at the real dimensions of
Llama-3.2-1B, Qwen2.5-0.5B and Gemma-2-2B, with `--layers` decoder layers (2 by default: this 2-core CPU machine
cannot hold or run the full models quickly). Their KV cache (the model's own class: DynamicCache, or StaticCache)
is filled with `--cache` tokens of random keys and values, then one token is decoded (batch 1) with the arguments
`model.generate` passes on a decode step (cache_position, position_ids, an all-ones attention mask); the step
counted is the second one after the filled cache (see count_decode).

What is counted (the op census; no timing):
- aten ops that would dispatch to the device, seen by a TorchDispatchMode. Ops that launch no kernel are left out:
  views and aliases (every OpOverload with `is_view`, and METADATA_ONLY below), and allocations of uninitialised
  memory (`empty*`). Everything else (copies, fills, arange, reductions, element-wise ops, matmuls, SDPA) counts
  as one device op each, also `_local_scalar_dense` (a read back to the host, a sync on MPS).
- mpskernels ops (`mpskernels.ops.*` / `torch.ops.mpskernels.*`), counted once per op call, with the dispatches
  of its launch plan; aten ops an mpskernels op makes internally (its output allocation) are not counted again.
- The split: matmuls (mm, addmm, bmm, baddbmm, ...), attention (SDPA, mpskernels.attention), small (the rest:
  the non-matmul ops the issue's target is about; attention is reported on its own).

Per layer: ops run while a decoder layer's forward is active, divided by the layers built; non-layer: the rest
(embedding, rotary tables, mask, final norm, lm_head). The full-model figure multiplies the per-layer count out to
the model's real layer count (stated in the table). The vocabulary is built at `--vocab` (default 4096: the real
128k-256k embedding tables would take gigabytes of this machine's memory) — it changes no op count.

For torch.compile(backend="mpskernels"), the count is taken from the rewritten aten graph(s) the backend hands to
Inductor (static: one node = one op per call, views excluded as above), per layer from the difference between
`--layers` and 2x `--layers` layers. Inductor fuses the remaining element-wise nodes further, which is not
counted here (on CPU it would generate C++ loops, not the Metal kernels it generates on a Mac).

    PYTHONPATH=$PWD/src python benches/decode_step.py [--models llama-3.2-1b,...] [--cache 512,4096] [--modes ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# ---- the models ----


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config: Callable[[int, int], Any]  # (layers, vocab) -> transformers config at the real dimensions
    layers: int  # the real model's decoder layers
    vocab: int  # the real vocabulary (for the bytes model; the census builds a smaller one)
    static_cache: bool = True  # the model's attention runs with HF's StaticCache


def _llama(layers: int, vocab: int) -> Any:
    import transformers

    return transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=2048, intermediate_size=8192, num_hidden_layers=layers,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192})


def _qwen(layers: int, vocab: int) -> Any:
    import transformers

    return transformers.Qwen2Config(
        vocab_size=vocab, hidden_size=896, intermediate_size=4864, num_hidden_layers=layers, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False)


def _gemma2(layers: int, vocab: int) -> Any:
    import transformers

    return transformers.Gemma2Config(
        vocab_size=vocab, hidden_size=2304, intermediate_size=9216, num_hidden_layers=layers, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, max_position_embeddings=8192, rms_norm_eps=1e-6, rope_theta=10000.0,
        query_pre_attn_scalar=256, sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh")


MODELS = {s.name: s for s in (ModelSpec("llama-3.2-1b", _llama, 16, 128256),
                              ModelSpec("qwen2.5-0.5b", _qwen, 24, 151936),
                              ModelSpec("gemma-2-2b", _gemma2, 26, 256000))}


def build(spec_or_config: Any, layers: int = 2, vocab: int = 4096, seed: int = 0) -> torch.nn.Module:
    """The causal LM with random weights, in eval mode, SDPA attention where the model has it."""
    import transformers

    config = spec_or_config.config(layers, vocab) if isinstance(spec_or_config, ModelSpec) else spec_or_config
    torch.manual_seed(seed)
    try:
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    except ValueError:  # no SDPA path (Gemma-2: its logit soft-capping): the model's eager attention
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.generation_config.pad_token_id = 0
    return model.eval()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return list(model.model.layers)


def filled_cache(model: torch.nn.Module, length: int, static: bool, seed: int = 1) -> Any:
    """The model's own cache class holding `length` tokens of random keys and values in every layer."""
    import transformers

    config = model.config
    if static:
        cache = transformers.StaticCache(config=config, max_cache_len=length + 64)
    else:
        cache = transformers.DynamicCache(config=config)
    g = torch.Generator().manual_seed(seed)
    heads = config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = next(model.parameters()).dtype
    for i in range(config.num_hidden_layers):
        k = torch.randn(1, heads, length, head_dim, generator=g).to(dtype)
        v = torch.randn(1, heads, length, head_dim, generator=g).to(dtype)
        cache.update(k, v, i, {"cache_position": torch.arange(length)})
    return cache


def decode_kwargs(cache: Any, length: int, token: int = 3) -> dict[str, Any]:
    """One decode step's arguments, as model.generate passes them after `length` tokens."""
    return {"input_ids": torch.tensor([[token]]), "past_key_values": cache, "use_cache": True,
            "cache_position": torch.tensor([length]), "position_ids": torch.tensor([[length]]),
            "attention_mask": torch.ones(1, length + 1, dtype=torch.long)}


# ---- the census ----

MATMULS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default, aten.linear.default,
           aten._weight_int4pack_mm.default, aten.matmul.default, aten.addmv.default, aten.mv.default,
           aten.dot.default}
ATTENTION_PREFIX = ("_scaled_dot_product", "scaled_dot_product")
MPSK_ATTENTION = {"attention"}
# aten ops that launch no device kernel: metadata changes and uninitialised allocations (besides `is_view` ops)
METADATA_ONLY = {"detach", "alias", "lift_fresh", "_unsafe_view", "empty", "empty_like", "empty_strided",
                 "new_empty", "new_empty_strided", "resize_", "set_", "sym_size", "sym_stride", "sym_numel",
                 "sym_storage_offset", "is_same_size", "_reshape_alias",
                 "_has_compatible_shallow_copy_type"}


def is_device_op(func: Any) -> bool:
    if getattr(func, "is_view", False):
        return False
    return func._schema.name.split("::")[-1] not in METADATA_ONLY


def aten_kind(func: Any) -> str:
    if func in MATMULS:
        return "matmul"
    if func._schema.name.split("::")[-1].startswith(ATTENTION_PREFIX):
        return "attention"
    return "small"


def mpsk_kind(name: str) -> str:
    return "attention" if name in MPSK_ATTENTION else "small"


@dataclass
class Census:
    """Device ops of one call: per (where, kind) with where in {layer, other}; the op names behind each."""

    aten: Counter = field(default_factory=Counter)  # (where, kind) -> aten ops
    mpsk: Counter = field(default_factory=Counter)  # (where, kind) -> mpskernels ops
    dispatches: Counter = field(default_factory=Counter)  # (where, kind) -> Metal dispatches of those ops
    names: Counter = field(default_factory=Counter)  # (where, op name) -> count

    def total(self, kind: str | None = None, where: str | None = None) -> int:
        return sum(c for (w, k), c in (self.aten + self.mpsk).items()
                   if (kind is None or k == kind) and (where is None or w == where))


class _Counter(TorchDispatchMode):
    def __init__(self, census: Census, state: dict) -> None:
        super().__init__()
        self.census, self.state = census, state

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.state["inside_mpsk"] and is_device_op(func):
            where = "layer" if self.state["layer_depth"] else "other"
            self.census.aten[(where, aten_kind(func))] += 1
            self.census.names[(where, func._schema.name.split("::")[-1])] += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def census(model: torch.nn.Module) -> Iterator[Census]:
    """Counts the device ops of the calls made inside the block (see the module's docstring). An mpskernels op is
    counted where it reaches its kernel backend (every backend's `launch`, wrapped on its instance for the block,
    so cached decisions holding the instance see it too); aten ops made inside a launch are its own."""
    from mpskernels import runtime

    result, state = Census(), {"inside_mpsk": 0, "layer_depth": 0}

    def counted(real):
        def launch(family, plan, tensors):
            where = "layer" if state["layer_depth"] else "other"
            if not state["inside_mpsk"]:
                result.mpsk[(where, mpsk_kind(family.name))] += 1
                result.names[(where, f"mpskernels.{family.name}")] += 1
                result.dispatches[(where, mpsk_kind(family.name))] += len(plan.dispatches)
            state["inside_mpsk"] += 1
            try:
                return real(family, plan, tensors)
            finally:
                state["inside_mpsk"] -= 1
        return launch

    def enter(*_):
        state["layer_depth"] += 1

    def leave(*_):
        state["layer_depth"] -= 1

    backends = [(b, b.__dict__.get("launch")) for b in runtime.BACKENDS.values()]
    for backend, _ in backends:
        backend.launch = counted(backend.launch)
    hooks = [h for layer in decoder_layers(model) for h in
             (layer.register_forward_pre_hook(enter), layer.register_forward_hook(leave, always_call=True))]
    try:
        with _Counter(result, state):
            yield result
    finally:
        for backend, own in backends:
            if own is None:
                del backend.launch  # the class's method again
            else:
                backend.launch = own
        for h in hooks:
            h.remove()


def count_step(model: torch.nn.Module, kwargs: dict[str, Any]) -> Census:
    with torch.no_grad(), census(model) as c:
        model(**kwargs)
    return c


def count_decode(model: torch.nn.Module, cache_len: int, static: bool) -> Census:
    """The second decode step after a cache of `cache_len` tokens: the first one is where an in-place cache takes
    the rows HF's own update wrote (a copy made once per generation), the second is every later token's."""
    cache = filled_cache(model, cache_len, static)
    with torch.no_grad():
        model(**decode_kwargs(cache, cache_len))
    return count_step(model, decode_kwargs(cache, cache_len + 1))


# ---- torch.compile(backend="mpskernels"): the rewritten graphs, counted statically ----


def graph_census(graphs: list[Any]) -> Census:
    c = Census()
    for gm in graphs:
        for node in gm.graph.nodes:
            if node.op != "call_function" or not hasattr(node.target, "_schema"):
                continue
            name = node.target._schema.name
            if name.startswith("mpskernels::"):
                short = name.split("::")[1]
                c.mpsk[("all", mpsk_kind(short))] += 1
                c.names[("all", f"mpskernels.{short}")] += 1
            elif is_device_op(node.target):
                c.aten[("all", aten_kind(node.target))] += 1
                c.names[("all", name.split("::")[-1])] += 1
    return c


def count_compiled(model: torch.nn.Module, kwargs: dict[str, Any]) -> Census:
    """The aten graphs the mpskernels backend hands to Inductor for one decode call (run without Inductor here)."""
    import mpskernels.compile as backend_module

    graphs: list[Any] = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return gm

    real = backend_module._compile_rest
    backend_module._compile_rest = keep
    torch._dynamo.reset()
    try:
        compiled = torch.compile(model, backend="mpskernels")
        with torch.no_grad():
            compiled(**kwargs)
    finally:
        backend_module._compile_rest = real
        torch._dynamo.reset()
    return graph_census(graphs)


# ---- rows of the table ----

IN_PLACE_APPENDS = ("mpskernels.kv_cache_append", "mpskernels.rope_kv_append")  # ops appending to a cache in place


@dataclass
class Row:
    model: str
    cache: str
    mode: str
    layers_built: int
    layers_full: int
    per_layer: dict[str, float]  # kind -> ops per layer
    other: dict[str, int]  # kind -> ops outside the layers
    mpsk_per_layer: float = 0.0
    dispatches_per_token: float = 0.0
    mpsk_other: float = 0.0
    in_place_cache: bool = False  # the KV cache was appended in place (kv_cache_append or rope_kv_append, or a
    # StaticCache)

    @property
    def mpsk_full(self) -> float:
        return self.mpsk_other + self.mpsk_per_layer * self.layers_full

    def full(self, kind: str) -> float:
        return self.other.get(kind, 0) + self.per_layer.get(kind, 0) * self.layers_full


KINDS = ("matmul", "attention", "small")


def row_from_census(c: Census, spec: ModelSpec, layers: int, cache: str, mode: str) -> Row:
    per_layer = {k: c.total(k, "layer") / layers for k in KINDS}
    other = {k: c.total(k, "other") for k in KINDS}
    mpsk_layer = sum(v for (w, _), v in c.mpsk.items() if w == "layer") / layers
    disp = (sum(v for (w, _), v in c.dispatches.items() if w == "layer") / layers * spec.layers +
            sum(v for (w, _), v in c.dispatches.items() if w == "other"))
    mpsk_other = sum(v for (w, _), v in c.mpsk.items() if w == "other")
    in_place = "static" in cache or any(n in IN_PLACE_APPENDS for _, n in c.names)
    return Row(spec.name, cache, mode, layers, spec.layers, per_layer, other, mpsk_layer, disp, mpsk_other, in_place)


def row_from_graphs(small: Census, large: Census, spec: ModelSpec, layers: int, cache: str) -> Row:
    """Per layer from the difference between the graphs of `layers` and 2 x `layers` layers."""
    per_layer = {k: (large.total(k) - small.total(k)) / layers for k in KINDS}
    other = {k: small.total(k) - per_layer[k] * layers for k in KINDS}
    mpsk = (sum(large.mpsk.values()) - sum(small.mpsk.values())) / layers
    return Row(spec.name, cache, "compile", layers, spec.layers, per_layer, other, mpsk, float("nan"),
               sum(small.mpsk.values()) - mpsk * layers, "static" in cache)




def measure(spec: ModelSpec, layers: int, cache_len: int, static: bool, modes: list[str],
            vocab: int) -> list[Row]:
    import mpskernels

    label = f"{cache_len} {'static' if static else 'dynamic'}"
    rows = []
    with mpskernels.use_backend("emulator"):
        model = build(spec, layers, vocab)
        fresh = lambda: decode_kwargs(filled_cache(model, cache_len, static), cache_len)  # noqa: E731
        if "eager" in modes:
            rows.append(row_from_census(count_decode(model, cache_len, static), spec, layers, label, "eager"))
        if "optimize" in modes:
            mpskernels.optimize(model, example_kwargs=fresh())
            rows.append(row_from_census(count_decode(model, cache_len, static), spec, layers, label, "optimize"))
            mpskernels.restore(model)
        if "compile" in modes:
            small = count_compiled(model, fresh())
            big = build(spec, 2 * layers, vocab)
            large = count_compiled(big, decode_kwargs(filled_cache(big, cache_len, static), cache_len))
            rows.append(row_from_graphs(small, large, spec, layers, label))
    return rows


def host_cost_us() -> tuple[float, float] | None:
    """(worst µs mpskernels adds per launch through mpskernels.ops, through torch.ops.mpskernels) over
    benches/dispatch.py's ops, measured as it measures them; None when it cannot run."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import dispatch

    costs, _, _ = dispatch.added_host_us(calls=2000, repeats=5)
    if not costs:
        return None
    return max(c.added_direct for c in costs), max(c.added_dispatcher for c in costs)


def format_rows(rows: list[Row]) -> str:
    head = ("| model | cache | mode | per layer: matmul / attn / small | non-layer: matmul / attn / small | "
            "full model: matmul / attn / small | total | mpsk ops / layer |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        pl = " / ".join(f"{r.per_layer[k]:g}" for k in KINDS)
        ot = " / ".join(f"{r.other[k]:g}" for k in KINDS)
        fu = " / ".join(f"{r.full(k):g}" for k in KINDS)
        total = sum(r.full(k) for k in KINDS)
        lines.append(f"| {r.model} ({r.layers_full} layers) | {r.cache} | {r.mode} | {pl} | {ot} | {fu} | "
                     f"{total:g} | {r.mpsk_per_layer:g} |")
    return "\n".join(lines)


# ---- the model of a Mac (a MODEL, not a measurement: see docs/decode.md) ----

# Host work per op (issue 18, from pytorch/pytorch#148219 and torchchat PR 1464): PyTorch's MPSGraph path, and an
# op with a native Metal kernel.
HOST_US_MPSGRAPH = 20.0
HOST_US_NATIVE = 1.3
# Unified-memory bandwidth, Apple's published specifications (GB/s).
BANDWIDTH_GBS = {"M2": 100.0, "M4": 120.0, "M4 Pro": 273.0, "M4 Max": 546.0}
BYTES = 2  # bf16 weights and KV cache, as these models ship


QUANT_GROUP = 64  # mpskernels.quantize's group size for the quantised rows: a scale and a bias per 64 weights


def weight_bytes(bits: int) -> float:
    """Bytes per weight of a linear layer: bf16, or `bits`-bit values plus a bf16 scale and bias per group."""
    return BYTES if bits >= 16 else bits / 8 + 2 * BYTES / QUANT_GROUP


def decode_bytes(spec: ModelSpec, cache_len: int, in_place: bool, bits: int = 16) -> float:
    """Bytes one decode token moves at least: every weight once (the tied embedding read as the lm_head; the
    token's embedding row is negligible), the KV cache read by attention, and (eager DynamicCache) torch.cat's
    copy of the whole cache, read and written, for keys and values of every layer. `bits` < 16: the decoder
    layers' linear weights as mpskernels.quantize stores them (the lm_head / embedding stays bf16, as it keeps it)."""
    c = spec.config(spec.layers, spec.vocab)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    q, kv = c.num_attention_heads * head_dim, c.num_key_value_heads * head_dim
    per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    linear = spec.layers * per_layer * weight_bytes(bits)
    cache = 2 * spec.layers * kv * cache_len  # keys and values, every layer
    copied = 0 if in_place else 2 * cache  # cat: the old cache read, the new one written
    return linear + (spec.vocab * c.hidden_size + cache + copied) * BYTES


def format_quantised(models: list[str], cache_len: int) -> str:
    """The modelled effect of mpskernels.quantize on the bytes a decode token moves (in-place KV cache)."""
    names = list(BANDWIDTH_GBS)
    lines = [f"| model | weights | MB moved / token (cache {cache_len}) | " +
             " | ".join(f"memory us, {n}" for n in names) + " |", "|" + "---|" * (3 + len(names))]
    for model in models:
        for bits in (16, 8, 4):
            moved = decode_bytes(MODELS[model], cache_len, True, bits)
            label = "bf16" if bits == 16 else f"int{bits}, groups of {QUANT_GROUP}"
            lines.append(f"| {model} | {label} | {moved / 1e6:.0f} | " +
                         " | ".join(f"{moved / (BANDWIDTH_GBS[n] * 1e9) * 1e6:.0f}" for n in names) + " |")
    return "\n".join(lines)


def modelled(row: Row, spec: ModelSpec, cache_len: int) -> dict[str, float]:
    """Host microseconds per token (aten ops at the MPSGraph or the native cost, mpskernels launches at the
    native cost) and memory microseconds per token at each bandwidth."""
    ops_total = sum(row.full(k) for k in KINDS)
    mpsk = row.mpsk_full
    aten_ops = ops_total - mpsk
    moved = decode_bytes(spec, cache_len, row.in_place_cache)
    out = {"host_mpsgraph_us": aten_ops * HOST_US_MPSGRAPH + mpsk * HOST_US_NATIVE,
           "host_native_us": ops_total * HOST_US_NATIVE, "bytes": moved}
    out.update({f"memory_us {name}": moved / (gbs * 1e9) * 1e6 for name, gbs in BANDWIDTH_GBS.items()})
    return out


def format_model(rows: list[Row]) -> str:
    names = list(BANDWIDTH_GBS)
    lines = ["| model | cache | mode | device ops / token | host us @ 20 us (MPSGraph) | host us @ 1.3 us (native) "
             "| MB moved / token | " + " | ".join(f"memory us, {n} ({BANDWIDTH_GBS[n]:g} GB/s)" for n in names) + " |",
             "|" + "---|" * (7 + len(names))]
    for r in rows:
        length = int(r.cache.split()[0])
        m = modelled(r, MODELS[r.model], length)
        total = sum(r.full(k) for k in KINDS)
        lines.append(f"| {r.model} | {r.cache} | {r.mode} | {total:g} | {m['host_mpsgraph_us']:.0f} | "
                     f"{m['host_native_us']:.0f} | {m['bytes'] / 1e6:.0f} | " +
                     " | ".join(f"{m['memory_us ' + n]:.0f}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cache", default="512,4096")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--modes", default="eager,optimize,compile")
    parser.add_argument("--caches", default="dynamic", help="dynamic,static: HF's DynamicCache and/or StaticCache")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        spec = MODELS[name]
        for length in (int(x) for x in args.cache.split(",")):
            kinds = args.caches.split(",")
            for static in [k == "static" for k in kinds if k == "dynamic" or spec.static_cache]:
                rows += measure(spec, args.layers, length, static, args.modes.split(","), args.vocab)
                print(format_rows(rows[-len(args.modes.split(",")):]), flush=True)
    print(format_rows(rows))
    print()
    print(format_model(rows))
    print()
    print(format_quantised(args.models.split(","), int(args.cache.split(",")[0])))
    host = host_cost_us()
    print(f"host work mpskernels adds per launch (benches/dispatch.py, worst op): {host[0]:.2f} us through "
          f"mpskernels.ops, {host[1]:.2f} us through torch.ops.mpskernels" if host is not None else
          "host work mpskernels adds per launch: not measured")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dataclasses.asdict(r) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
