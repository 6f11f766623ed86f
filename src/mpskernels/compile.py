"""The torch.compile backend: `torch.compile(model, backend="mpskernels")`.

Dynamo's graph is traced to a normalised aten graph (make_fx, fake tensors); rewrites there replace the computations
mpskernels has kernels for (written out or as aten ops) with `torch.ops.mpskernels.*`; Inductor compiles the rest
(our ops stay opaque calls). If Inductor fails, the rewritten graph runs eagerly. With `options={"verify": True}`
the first call is also run by the original graph and compared; on a mismatch the backend falls back to eager.
"""

from __future__ import annotations

import logging
import operator
from typing import Any, Callable

import torch
from torch import fx

from . import registry  # noqa: F401  (registers the ops)
from .tolerances import TOLERANCES, Tolerance, compare

log = logging.getLogger("mpskernels")
aten = torch.ops.aten
mpsk = torch.ops.mpskernels


def _val(node: Any):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _contiguous_like(val: Any) -> Any:
    """Metadata for an mpskernels op's output: same shape and dtype, contiguous (what its fake returns)."""
    return val.new_empty(val.shape) if isinstance(val, torch.Tensor) else val


def _with_layout_of(graph: fx.Graph, node: fx.Node, original: torch.Tensor) -> fx.Node:
    """`node` (contiguous) in the memory layout of `original`, which later views in the graph may rely on (CPU
    SDPA returns a [B, S, H, D]-ordered output, and the code after it reshapes without a copy)."""
    if original.is_contiguous():
        return node
    order = sorted(range(original.dim()), key=lambda d: -original.stride(d))  # outermost dimension first
    inverse = [order.index(d) for d in range(original.dim())]
    permuted = graph.call_function(aten.permute.default, (node, order))
    copied = graph.call_function(aten.clone.default, (permuted,), {"memory_format": torch.contiguous_format})
    restored = graph.call_function(aten.permute.default, (copied, inverse))
    for n in (permuted, copied, restored):
        n.meta["val"] = n.target(*[_val(a) if isinstance(a, fx.Node) else a for a in n.args], **n.kwargs)
    return restored


def _single_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _other_operand(mul: fx.Node, known: fx.Node) -> Any:
    a, b = mul.args[:2]
    return b if a is known else a if b is known else None


def _is_last_dim(dims: Any, ndim: int) -> bool:
    return isinstance(dims, (list, tuple)) and len(dims) == 1 and dims[0] in (-1, ndim - 1)


# ---- rewrites: each finds one computation in an aten graph and replaces it; returns how many it replaced ----


FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Traced without functionalisation, `v + eps` on a fresh temporary may appear in place.
ADDS = (aten.add.Tensor, aten.add.Scalar, aten.add_.Tensor, aten.add_.Scalar)


def rewrite_rms_norm(graph: fx.Graph) -> int:
    """x * rsqrt(mean(x^2, -1, keepdim) + eps) [cast back] [* weight], with x optionally upcast to float32."""
    count = 0
    for rsqrt in [n for n in graph.nodes if n.target == aten.rsqrt.default]:
        add = rsqrt.args[0]
        if not isinstance(add, fx.Node) or add.target not in ADDS:
            continue
        mean, eps = add.args[:2]
        if not isinstance(eps, (float, int)) or not isinstance(mean, fx.Node) or mean.target != aten.mean.dim:
            continue
        pow_ = mean.args[0]
        keepdim = mean.args[2] if len(mean.args) > 2 else mean.kwargs.get("keepdim", False)
        if not keepdim or not isinstance(pow_, fx.Node) or pow_.target != aten.pow.Tensor_Scalar \
                or pow_.args[1] != 2:
            continue
        x = pow_.args[0]
        x_val = _val(x)
        if x_val is None or not _is_last_dim(mean.args[1], x_val.dim()):
            continue
        normed = _single_user(rsqrt)
        if normed is None or normed.target != aten.mul.Tensor or _other_operand(normed, rsqrt) is not x:
            continue
        source = x
        if x.target == aten._to_copy.default and x.kwargs.get("dtype") == torch.float32 and len(x.users) == 2:
            source = x.args[0]  # the upcast only serves this norm
        source_val = _val(source)
        end, weight = normed, None
        for _ in range(2):  # a cast back to the input dtype and a weight multiply, in either order
            user = _single_user(end)
            if user is None:
                break
            if user.target == aten._to_copy.default and set(user.kwargs) <= {"dtype", "layout", "device"}:
                end = user
            elif user.target == aten.mul.Tensor and weight is None:
                w = _other_operand(user, end)
                w_val = _val(w)
                if w_val is None or tuple(w_val.shape) != (source_val.shape[-1],):
                    break
                weight, end = w, user
            else:
                break
        end_val = _val(end)
        if end_val is None or end_val.dtype != source_val.dtype or tuple(end_val.shape) != tuple(source_val.shape):
            continue
        if weight is not None and _val(weight).dtype != source_val.dtype:
            continue
        if source_val.dtype not in FLOAT_DTYPES:
            continue
        with graph.inserting_before(end):
            fused = graph.call_function(mpsk.rms_norm.default, (source, weight, float(eps)))
        fused.meta["val"] = _contiguous_like(end_val)
        end.replace_all_uses_with(fused)
        count += 1
    return count


def _direct_table() -> dict[Any, tuple[Any, Callable[[fx.Node], tuple | None]]]:
    """aten op -> (mpskernels op, node -> its arguments, or None when this call is not covered)."""
    table: dict[Any, tuple[Any, Callable[[fx.Node], tuple | None]]] = {
        aten.silu.default: (mpsk.silu.default, lambda n: (n.args[0],)),
    }
    if hasattr(mpsk, "gelu"):
        table[aten.gelu.default] = (mpsk.gelu.default, lambda n: (
            n.args[0], n.kwargs.get("approximate", n.args[1] if len(n.args) > 1 else "none")))
    if hasattr(mpsk, "mish"):
        table[aten.mish.default] = (mpsk.mish.default, lambda n: (n.args[0],))
    if hasattr(mpsk, "hardswish"):
        table[aten.hardswish.default] = (mpsk.hardswish.default, lambda n: (n.args[0],))
    if hasattr(mpsk, "softmax"):
        table[aten._softmax.default] = (mpsk.softmax.default, _last_dim_softmax)
        table[aten._log_softmax.default] = (mpsk.log_softmax.default, _last_dim_softmax)
    return table


def _last_dim_softmax(node: fx.Node) -> tuple | None:
    x, dim, half_to_float = node.args[:3]
    val = _val(x)
    if half_to_float or val is None or val.dim() == 0 or dim not in (-1, val.dim() - 1):
        return None
    return (x, None, 1.0)


def _first_output_only(node: fx.Node) -> fx.Node | None:
    """The getitem(node, 0) of a multi-output aten op whose other outputs are unused (inference norms)."""
    outputs = [u for u in node.users if u.target is operator.getitem]
    if len(outputs) != len(node.users):
        return None
    used = {u.args[1] for u in outputs if u.users}
    firsts = [u for u in outputs if u.args[1] == 0]
    return firsts[0] if used <= {0} and firsts else None


def rewrite_norms(graph: fx.Graph) -> int:
    """native_layer_norm over the last dimension and native_group_norm -> mpskernels ops."""
    count = 0
    for node in list(graph.nodes):
        if node.target == aten.native_layer_norm.default and hasattr(mpsk, "layer_norm"):
            x, shape, weight, bias, eps = node.args[:5]
            val = _val(x)
            if val is None or val.dtype not in FLOAT_DTYPES or len(shape) != 1 or shape[0] != val.shape[-1]:
                continue
            replacement = (mpsk.layer_norm.default, (x, weight, bias, float(eps)))
        elif node.target == aten.native_group_norm.default and hasattr(mpsk, "group_norm"):
            x, weight, bias, _n, _c, _hw, groups, eps = node.args[:8]
            val = _val(x)
            if val is None or val.dtype not in FLOAT_DTYPES:
                continue
            replacement = (mpsk.group_norm.default, (x, int(groups), weight, bias, float(eps)))
        else:
            continue
        first = _first_output_only(node)
        if first is None or any(_val(a) is not None and _val(a).dtype != val.dtype
                                for a in replacement[1] if isinstance(a, fx.Node)):
            continue
        with graph.inserting_before(first):
            fused = graph.call_function(*replacement)
        fused.meta["val"] = _contiguous_like(_val(first))
        first.replace_all_uses_with(fused)
        count += 1
    return count


def rewrite_residual_norms(graph: fx.Graph) -> int:
    """h = x + residual feeding an RMSNorm/LayerNorm while h is also used later (the residual stream) ->
    add_rms_norm / add_layer_norm, which returns (norm(h), h) from one pass."""
    fused_ops = {"rms_norm": "add_rms_norm", "layer_norm": "add_layer_norm"}
    graph.eliminate_dead_code()  # the written-out norms the earlier rewrites replaced still read the sum
    position = {n: i for i, n in enumerate(graph.nodes)}
    count = 0
    for node in list(graph.nodes):
        kind = next((k for k in fused_ops if node.target == getattr(getattr(mpsk, k, None), "default", None)), None)
        if kind is None or not hasattr(mpsk, fused_ops[kind]):
            continue
        add = node.args[0]
        if not isinstance(add, fx.Node) or add.target != aten.add.Tensor or len(add.args) != 2 or add.kwargs:
            continue
        x, residual = add.args
        vals = [_val(x), _val(residual), _val(add)]
        if any(v is None for v in vals) or len({(tuple(v.shape), v.dtype) for v in vals}) != 1:
            continue
        if any(position[u] < position[node] for u in add.users if u is not node):
            continue  # the sum is read before the norm: the fused op, placed at the norm, would come too late
        with graph.inserting_before(node):
            fused = graph.call_function(getattr(mpsk, fused_ops[kind]).default, (x, residual, *node.args[1:]))
            normed = graph.call_function(operator.getitem, (fused, 0))
            summed = graph.call_function(operator.getitem, (fused, 1))
        normed.meta["val"], summed.meta["val"] = _contiguous_like(_val(node)), _contiguous_like(vals[2])
        fused.meta["val"] = (normed.meta["val"], summed.meta["val"])
        node.replace_all_uses_with(normed)
        add.replace_all_uses_with(summed)
        count += 1
    return count


def rewrite_direct(graph: fx.Graph, gate: Any = None) -> int:
    """aten ops with an mpskernels op of the same meaning: swap the call target (where `gate`, a SpeedGate, says
    the kernel is faster at these shapes: see docs/optimize.md)."""
    table = _direct_table()
    count = 0
    for node in list(graph.nodes):
        entry = table.get(node.target)
        if entry is None:
            continue
        target, arguments = entry
        val = _val(node.args[0])
        args = arguments(node)
        if val is None or val.dtype not in FLOAT_DTYPES or args is None:
            continue
        if gate is not None and not _faster(gate, node, target, args):
            continue
        node.target, node.args, node.kwargs = target, args, {}
        count += 1
    return count


def _faster(gate: Any, node: fx.Node, target: Any, args: tuple) -> bool:
    """The gate's answer for this call, timed (if not cached) on random tensors of the nodes' dtypes and shapes."""
    made: dict[fx.Node, Any] = {}

    def real(a: Any) -> Any:
        if not isinstance(a, fx.Node):
            return a
        if a not in made:
            v = _val(a)
            made[a] = torch.randn(v.shape, dtype=v.dtype, device=v.device) if isinstance(v, torch.Tensor) else v
        return made[a]

    original = (tuple(real(a) for a in node.args), {k: real(v) for k, v in node.kwargs.items()})
    new = tuple(real(a) for a in args)
    described = [_val(a) if isinstance(a, fx.Node) else a for a in node.args]
    return gate.keep(str(target).split(".")[-2], f"aten:{node.target}", described,
                     lambda: node.target(*original[0], **original[1]), lambda: target(*new))


def _sdpa_arguments(node: fx.Node) -> dict[str, Any] | None:
    """q, k, v, dropout_p, is_causal, attn_mask, scale of the SDPA variants aten lowers to, by device."""
    names = {
        "_scaled_dot_product_flash_attention_for_cpu": ("q", "k", "v", "dropout_p", "is_causal"),
        "_scaled_dot_product_attention_math_for_mps": ("q", "k", "v", "attn_mask", "dropout_p", "is_causal",
                                                       "dropout_mask"),
        "_scaled_dot_product_attention_math": ("q", "k", "v", "attn_mask", "dropout_p", "is_causal", "dropout_mask"),
    }.get(getattr(node.target, "__name__", "").split(".")[0])
    if names is None:
        return None
    args = {"dropout_p": 0.0, "is_causal": False, "attn_mask": None, "scale": None, "dropout_mask": None}
    args.update(zip(names, node.args))
    args.update(node.kwargs)
    return args


def rewrite_attention(graph: fx.Graph) -> int:
    """Scaled dot-product attention (any of aten's lowerings) -> mpskernels.attention, where the meaning agrees:
    no dropout, an additive mask in q's dtype, causal only for square score matrices (SDPA aligns the causal
    mask top-left, mpskernels bottom-right, for a KV cache: the two agree when Sq == Sk)."""
    if not hasattr(mpsk, "attention"):
        return 0
    count = 0
    for node in list(graph.nodes):
        a = _sdpa_arguments(node)
        if a is None or a["dropout_p"] != 0.0 or a["dropout_mask"] is not None:
            continue
        q, k, mask = _val(a["q"]), _val(a["k"]), _val(a["attn_mask"])
        if q is None or k is None or q.dim() != 4 or q.dtype not in FLOAT_DTYPES:
            continue
        if mask is not None and (mask.dtype != q.dtype or mask.dim() != 4):
            continue
        if a["is_causal"] and q.shape[-2] != k.shape[-2]:
            continue
        outputs = {u.args[1]: u for u in node.users if u.target is operator.getitem}
        if set(outputs) != {0} or len(node.users) != 1:
            if any(i != 0 and len(u.users) for i, u in outputs.items()) or 0 not in outputs:
                continue
        first = outputs[0]
        with graph.inserting_before(first):
            fused = graph.call_function(mpsk.attention.default, (a["q"], a["k"], a["v"], a["attn_mask"],
                                                                 bool(a["is_causal"]), a["scale"], None))
            fused.meta["val"] = _contiguous_like(_val(first))
            result = _with_layout_of(graph, fused, _val(first))
        first.replace_all_uses_with(result)
        count += 1
    return count


def _batched_operand(node: Any) -> fx.Node | None:
    """X when `node` is view(expand(X)) — how aten lowers a 4-D operand of torch.matmul to bmm."""
    if not isinstance(node, fx.Node) or node.target not in (aten.view.default, aten._unsafe_view.default):
        return None
    expand = node.args[0]
    if not isinstance(expand, fx.Node) or expand.target != aten.expand.default:
        return None
    x = expand.args[0]
    return x if isinstance(x, fx.Node) and _val(x) is not None and _val(x).dim() == 4 else None


def _only_user(node: fx.Node, user: fx.Node) -> bool:
    return list(node.users) == [user]


def rewrite_written_attention(graph: fx.Graph) -> int:
    """softmax(q @ k^T / c [+ mask], -1) @ v written out with matmul -> mpskernels.attention (when the scores and
    probabilities are used for nothing else: attention weights that a model returns keep the written-out form)."""
    if not hasattr(mpsk, "attention"):
        return 0
    count = 0
    for out in list(graph.nodes):
        if out.target not in (aten.view.default, aten._unsafe_view.default):
            continue
        bmm2 = out.args[0]
        if not isinstance(bmm2, fx.Node) or bmm2.target != aten.bmm.default or not _only_user(bmm2, out):
            continue
        probs_view, v_view = bmm2.args
        v = _batched_operand(v_view)
        probs = probs_view.args[0].args[0] if _batched_operand(probs_view) is not None else None
        if v is None or probs is None or probs.target != aten._softmax.default or probs.args[2]:
            continue
        scores = probs.args[0]
        mask = None
        if not _only_user(probs, probs_view.args[0]) or not _only_user(scores, probs):
            continue  # the probabilities or scores are used elsewhere (returned attention weights)
        if scores.target == aten.add.Tensor and isinstance(scores.args[1], fx.Node):
            masked = scores
            scores, mask = scores.args[0], scores.args[1]
            if not _only_user(scores, masked):
                continue
        if scores.target not in (aten.div.Tensor, aten.mul.Tensor) or not isinstance(scores.args[1], (int, float)):
            continue
        scale = 1.0 / scores.args[1] if scores.target == aten.div.Tensor else float(scores.args[1])
        raw = scores.args[0]
        if not isinstance(raw, fx.Node) or raw.target not in (aten.view.default, aten._unsafe_view.default) \
                or not _only_user(raw, scores):
            continue
        bmm1 = raw.args[0]
        if not isinstance(bmm1, fx.Node) or bmm1.target != aten.bmm.default:
            continue
        q, kt = (_batched_operand(a) for a in bmm1.args)
        if q is None or kt is None or kt.target != aten.transpose.int or sorted(kt.args[1:]) not in ([-2, -1], [2, 3]):
            continue
        k = kt.args[0]
        qv, kv, vv, ov = _val(q), _val(k), _val(v), _val(out)
        if kv is None or kv.dim() != 4 or qv.dtype not in FLOAT_DTYPES or not (qv.dtype == kv.dtype == vv.dtype):
            continue
        if tuple(ov.shape) != (*qv.shape[:3], vv.shape[3]) or kv.shape[:2] != qv.shape[:2] or vv.shape != kv.shape:
            continue
        if mask is not None and (_val(mask) is None or _val(mask).dtype != qv.dtype or _val(mask).dim() != 4):
            continue
        with graph.inserting_before(out):
            fused = graph.call_function(mpsk.attention.default, (q, k, v, mask, False, scale, None))
        fused.meta["val"] = _contiguous_like(ov)
        out.replace_all_uses_with(fused)
        count += 1
    return count


def _rotate_half_source(cat: Any) -> fx.Node | None:
    """x when `cat` is rotate_half(x) = cat((-x[..., d/2:], x[..., :d/2]), -1) over the last dimension."""
    if not isinstance(cat, fx.Node) or cat.target != aten.cat.default or len(cat.args[0]) != 2:
        return None
    dim = cat.args[1] if len(cat.args) > 1 else 0
    neg, first = cat.args[0]
    if not (isinstance(neg, fx.Node) and neg.target == aten.neg.default and isinstance(first, fx.Node)):
        return None
    second = neg.args[0]
    if not all(isinstance(n, fx.Node) and n.target == aten.slice.Tensor for n in (first, second)):
        return None
    x = first.args[0]
    val = _val(x)
    if val is None or second.args[0] is not x or dim not in (-1, val.dim() - 1):
        return None
    half = val.shape[-1] // 2
    last = (-1, val.dim() - 1)
    if first.args[1] not in last or second.args[1] not in last or tuple(first.args[2:4]) != (0, half):
        return None
    if second.args[2] != half or second.args[3] < val.shape[-1]:
        return None
    return x


def _rotation(add: fx.Node) -> tuple[fx.Node, fx.Node, fx.Node] | None:
    """(x, cos, sin) when `add` is x * cos + rotate_half(x) * sin (in either operand order)."""
    if add.target != aten.add.Tensor or len(add.args) != 2 or add.kwargs:
        return None
    muls = add.args
    if not all(isinstance(m, fx.Node) and m.target == aten.mul.Tensor for m in muls):
        return None
    for plain, rotated in (muls, muls[::-1]):
        for cat, sin in (rotated.args, rotated.args[::-1]):
            x = _rotate_half_source(cat)
            if x is not None and x in plain.args:
                cos = _other_operand(plain, x)
                if isinstance(cos, fx.Node) and isinstance(sin, fx.Node):
                    return x, cos, sin
    return None


def rewrite_rotary(graph: fx.Graph) -> int:
    """The half-split rotary embedding of q and k with shared cos/sin tables (HF apply_rotary_pos_emb) ->
    one mpskernels.rope launch for both."""
    if not hasattr(mpsk, "rope"):
        return 0
    by_tables: dict[tuple[fx.Node, fx.Node], list[tuple[fx.Node, fx.Node]]] = {}
    for node in graph.nodes:
        found = _rotation(node)
        if found is not None:
            x, cos, sin = found
            by_tables.setdefault((cos, sin), []).append((node, x))
    count = 0
    for (cos, sin), rotations in by_tables.items():
        if len(rotations) != 2:
            continue
        (q_out, q), (k_out, k) = rotations
        qv, kv, cv, sv = (_val(n) for n in (q, k, cos, sin))
        if any(v is None for v in (qv, kv, cv, sv)) or qv.dim() != 4 or kv.dim() != 4:
            continue
        b, _, s, d = qv.shape
        tables_fit = all(v.dim() == 4 and v.shape[0] in (1, b) and tuple(v.shape[1:]) == (1, s, d) for v in (cv, sv))
        if not tables_fit or kv.shape[0] != b or tuple(kv.shape[2:]) != (s, d) or qv.dtype != kv.dtype:
            continue
        if qv.dtype not in FLOAT_DTYPES or cv.dtype not in (qv.dtype, torch.float32) or cv.dtype != sv.dtype:
            continue
        with graph.inserting_before(k_out):
            fused = graph.call_function(mpsk.rope.default, (q, k, cos, sin, None, 0, False))
            new_q = graph.call_function(operator.getitem, (fused, 0))
            new_k = graph.call_function(operator.getitem, (fused, 1))
        new_q.meta["val"], new_k.meta["val"] = _contiguous_like(_val(q_out)), _contiguous_like(_val(k_out))
        fused.meta["val"] = (new_q.meta["val"], new_k.meta["val"])
        q_out.replace_all_uses_with(new_q)
        k_out.replace_all_uses_with(new_k)
        count += 1
    return count


# Order matters: residual fusion looks for the norms the earlier rewrites produced.
REWRITES: list[Callable[[fx.Graph], int]] = [rewrite_rms_norm, rewrite_norms, rewrite_written_attention,
                                             rewrite_direct, rewrite_rotary, rewrite_attention, rewrite_residual_norms]


def rewrite(gm: fx.GraphModule, gate: Any = None) -> dict[str, int]:
    """Applies every rewrite; `gate` (optimize.gate.SpeedGate, on a GPU backend) decides the single-op ones by
    speed, from the decision cache optimize() shares."""
    counts = {r.__name__: r(gm.graph, gate) if r is rewrite_direct else r(gm.graph) for r in REWRITES}
    if gate is not None:
        gate.save()
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return counts


# ---- the backend ----


def _compile_rest(gm: fx.GraphModule, example_inputs: list) -> Callable:
    try:
        from torch._inductor.compile_fx import compile_fx

        return compile_fx(gm, example_inputs)  # the mpskernels ops stay opaque calls (fake impls while tracing)
    except Exception as e:  # Inductor could not compile this graph (or this machine lacks its toolchain)
        log.warning("mpskernels backend: Inductor failed (%s: %s); running the rewritten graph eagerly",
                    type(e).__name__, e)
        return gm


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _outputs(v)]
    return []


def _verified(compiled: Callable, reference: Callable, scale: float) -> Callable:
    state = {"checked": False, "use": compiled}

    def run(*args: Any):
        if state["checked"]:
            return state["use"](*args)
        state["checked"] = True
        got = compiled(*args)
        want = reference(*args)
        for g, w in zip(_outputs(got), _outputs(want)):
            tol = TOLERANCES.get(w.dtype)
            if tol is None or not w.is_floating_point():
                ok = torch.equal(g, w)
            else:
                ok = compare(g, w, tolerance=Tolerance(tol.rtol * scale, tol.atol * scale)).ok
            if not ok:
                log.warning("mpskernels backend: the compiled graph disagrees with eager on its first call; "
                            "using eager for this graph")
                state["use"] = reference
                return want
        return got

    return run


def to_aten(gm: fx.GraphModule, example_inputs: list) -> fx.GraphModule:
    """The same graph in aten ops (one spelling per computation), traced with fake tensors."""
    from torch.fx.experimental.proxy_tensor import make_fx

    # Outside Dynamo's tracing context: make_fx would otherwise reuse Dynamo's fake mode and shape environment
    # and leave symbols there that Dynamo's guards cannot source.
    with torch._guards.tracing(None):
        return make_fx(gm, tracing_mode="fake", _allow_non_fake_inputs=True)(*example_inputs)


def needs_gradients(example_inputs: list) -> bool:
    """Autograd records the graph's run: gradients enabled and an input (the parameters are inputs) requires them."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in example_inputs)


def ops_without_backward(gm: fx.GraphModule) -> list[str]:
    """The mpskernels ops in the graph that have no registered backward (a graph that needs gradients must not
    hold them: autograd would drop the gradient through them)."""
    from .registry import HAS_BACKWARD

    names = set()
    for node in gm.graph.nodes:
        target = getattr(node.target, "name", None)
        if node.op == "call_function" and callable(target) and target().startswith("mpskernels::"):
            name = target().split("::")[1].split(".")[0]
            if name not in HAS_BACKWARD:
                names.add(name)
    return sorted(names)


def backend(gm: fx.GraphModule, example_inputs: list, options: dict[str, Any] | None = None) -> Callable:
    """Dynamo backend for inference; torch.compile(..., options={...}) passes `options`: verify (bool: check the
    first call against eager), tolerance_scale (float, default 4: the verification tolerance relative to the
    dtype's)."""
    options = options or {}
    unknown = set(options) - {"verify", "tolerance_scale"}
    if unknown:
        raise ValueError(f"mpskernels backend: unknown option(s) {', '.join(sorted(unknown))}")
    verify = bool(options.get("verify", False))
    scale = float(options.get("tolerance_scale", 4.0))
    try:
        aten_gm = to_aten(gm, example_inputs)
    except Exception as e:
        log.warning("mpskernels backend: could not trace the graph to aten ops (%s: %s); running it eagerly",
                    type(e).__name__, e)
        return gm.forward
    from .optimize.gate import speed_gate

    counts = rewrite(aten_gm, speed_gate(example_inputs))
    log.info("mpskernels backend: rewrote %s", counts)
    lacking = ops_without_backward(aten_gm) if needs_gradients(example_inputs) else []
    if lacking:
        log.info("mpskernels backend: the graph needs gradients and %s has no backward; left as it was",
                 ", ".join(lacking))
        aten_gm = to_aten(gm, example_inputs)
    compiled = _compile_rest(aten_gm, example_inputs)
    return _verified(compiled, gm.forward, scale) if verify else compiled


def _register() -> None:
    # An installed mpskernels declares the backend as a `torch_dynamo_backends` entry point, which Dynamo loads
    # (and registers) itself; registering here too would be a duplicate. Without the entry point (source tree
    # on sys.path), register by hand.
    from importlib.metadata import entry_points

    if not any(ep.name == "mpskernels" for ep in entry_points(group="torch_dynamo_backends")):
        torch._dynamo.register_backend(name="mpskernels")(backend)


_register()
