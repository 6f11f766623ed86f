"""optimize() and the compile backend on real `transformers` model classes, built from small configs with random
weights (no downloads). Needs the optional `models` extra; skipped without transformers."""

import copy
import io

import pytest
import torch

import mpskernels

from .checks import check_optimize, first_tensor

transformers = pytest.importorskip("transformers")


def llama():
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config), (torch.randint(0, 64, (1, 9)),)


def gpt2():
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=128, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config), (torch.randint(0, 64, (1, 9)),)


def bert():
    config = transformers.BertConfig(vocab_size=64, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=256, max_position_embeddings=32)
    return transformers.BertModel(config), (torch.randint(0, 64, (1, 9)),)


def vit():
    config = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=128, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=256)
    return transformers.ViTModel(config), (torch.randn(1, 3, 16, 16),)


# model -> swapped modules per kernel (2 layers each). Head dim 64, which the attention kernel covers. Attention
# blocks keep their own forward, with SDPA and rotary calls routed: "rope+attention" is one LlamaAttention.
MODELS = {
    # 2 norms per layer + final; gated MLPs; each decoder layer's two residual adds fused with the norm after them
    "llama": (llama, {"rms_norm": 5, "swiglu_split": 2, "rope+attention": 2, "add_rms_norm": 2}),
    "gpt2": (gpt2, {"layer_norm": 5, "gelu": 2, "attention": 2}),  # ln_1, ln_2 per layer + ln_f; NewGELU as gelu-tanh
    "bert": (bert, {"layer_norm": 5, "gelu": 2, "attention": 2}),  # embeddings + 2 per layer; the activation
    "vit": (vit, {"layer_norm": 5, "gelu": 2, "attention": 2}),  # 2 per layer + final; the activation
}


@pytest.fixture
def emulator():
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        yield


@pytest.mark.parametrize("name", MODELS)
def test_optimize_swaps_the_expected_modules_and_keeps_the_outputs(name, emulator):
    build, expected_counts = MODELS[name]
    torch.manual_seed(0)
    model, inputs = build()
    check_optimize(model.eval(), inputs, expected_counts)


def _counting(monkeypatch, *names):
    calls = {n: 0 for n in names}
    for n in names:
        real = getattr(mpskernels.ops, n)
        monkeypatch.setattr(mpskernels.ops, n, lambda *a, _n=n, _real=real, **k: (
            calls.__setitem__(_n, calls[_n] + 1), _real(*a, **k))[1])
    return calls


def test_padded_llama_routes_its_boolean_mask_and_fully_masked_rows(emulator, monkeypatch):
    """A left-padded batch: SDPA gets a boolean mask, and the padding query's row is masked out entirely
    (SDPA returns zeros there; the kernel's softmax over -inf alone would give NaN)."""
    torch.manual_seed(0)
    model, _ = llama()
    model.eval()
    ids = torch.randint(0, 64, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :3] = 0
    inputs, kwargs = (ids,), {"attention_mask": mask}
    reference = model(*inputs, **kwargs).logits
    mpskernels.optimize(model, example_inputs=inputs, example_kwargs=kwargs)
    report = model.mpskernels_report
    assert report.counts()["rope+attention"] == 2 and report.rolled_back == [], str(report)
    calls = _counting(monkeypatch, "attention", "rope")
    got = model(*inputs, **kwargs).logits
    assert calls == {"attention": 2, "rope": 2}
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-5)
    mpskernels.restore(model)
    model(*inputs, **kwargs)
    assert calls == {"attention": 2, "rope": 2}  # restored: SDPA and the model's own rotary again


def _greedy_tokens_kept(build, tokens, monkeypatch, *counted):
    """Greedy generate() before and after optimize() gives the same tokens; the calls of `counted` ops after."""
    torch.manual_seed(0)
    model, inputs = build()
    model.eval().generation_config.pad_token_id = 0
    reference = model.generate(*inputs, max_new_tokens=tokens, do_sample=False)
    mpskernels.optimize(model, example_inputs=inputs)
    calls = _counting(monkeypatch, *counted)
    assert torch.equal(model.generate(*inputs, max_new_tokens=tokens, do_sample=False), reference)
    return calls


def test_optimized_llama_decodes_through_its_kv_cache(emulator, monkeypatch):
    """generate(): a prefill, then one-token steps attending to the cache (the decode kernel, rotary at an offset)."""
    calls = _greedy_tokens_kept(llama, 4, monkeypatch, "attention", "rope", "rope_kv_append")
    # 2 layers x (prefill + 3 steps); from the second step on, the rotation goes with the cache append in one launch
    assert calls == {"attention": 8, "rope": 4, "rope_kv_append": 4}


def test_optimized_llama_saves_with_save_pretrained_and_loads_the_same(emulator, tmp_path):
    """The MLPs' gate and up weights share one buffer after optimize() (optimize/gate_up.py): save_pretrained
    (safetensors) writes them as separate tensors, and the loaded model computes what the optimised one does."""
    torch.manual_seed(0)
    model, inputs = llama()
    mpskernels.optimize(model.eval(), example_inputs=inputs)
    mlp = model.model.layers[0].mlp
    assert mlp.gate_proj.weight.untyped_storage().data_ptr() == mlp.up_proj.weight.untyped_storage().data_ptr()
    model.save_pretrained(tmp_path)
    loaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(*inputs).logits, model(*inputs).logits)


def gpt_neox():
    """Partial rotary: the first half of each head rotates, the rest passes through."""
    config = transformers.GPTNeoXConfig(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=64, rotary_pct=0.5)
    return transformers.GPTNeoXForCausalLM(config), (torch.randint(0, 64, (1, 9)),)


def falcon():
    """Multi-query attention: one KV head, which SDPA broadcasts over the query heads."""
    config = transformers.FalconConfig(vocab_size=64, hidden_size=128, num_hidden_layers=1, num_attention_heads=2,
                                       multi_query=True, new_decoder_architecture=False, bos_token_id=0,
                                       eos_token_id=0)
    return transformers.FalconForCausalLM(config), (torch.randint(0, 64, (1, 9)),)


@pytest.mark.parametrize("build, expected", [
    (gpt_neox, {"layer_norm": 3, "gelu": 1, "rope+attention": 1}),
    (falcon, {"layer_norm": 2, "gelu": 1, "rope+attention": 1}),
])
def test_partial_rotary_and_multi_query_attention_are_routed(build, expected, emulator):
    torch.manual_seed(0)
    model, inputs = build()
    check_optimize(model.eval(), inputs, expected)


def test_eager_attention_function_and_rotary_are_routed(emulator):
    """attn_implementation="eager": the forward calls HF's eager_attention_forward, stood in for by grouped matmuls
    around one softmax launch (optimize/eager_attention.py); apply_rotary_pos_emb is routed to rope."""
    torch.manual_seed(0)
    model, inputs = llama()
    model.config._attn_implementation = "eager"
    check_optimize(model.eval(), inputs, {"rms_norm": 5, "swiglu_split": 2, "rope+softmax": 2, "add_rms_norm": 2})
    mpskernels.optimize(model)  # check_optimize restored it; without example inputs both are found too
    assert model.mpskernels_report.counts()["rope+softmax"] == 2


def test_eager_attention_report_names_the_compile_backend(emulator):
    torch.manual_seed(0)
    model, inputs = llama()
    model.config._attn_implementation = "eager"
    config = mpskernels.OptimizeConfig(exclude={"rope", "softmax"})
    mpskernels.optimize(model.eval(), config, example_inputs=inputs)
    skipped = {e.module: e.detail for e in model.mpskernels_report.skipped}
    detail = skipped["model.layers.0.self_attn"]
    assert "written out" in detail and "compile" in detail and "rope excluded by config" in detail
    assert "softmax excluded by config" in detail


def gemma2():
    """Gemma-2: eager attention only (logit soft-capping), a sliding-window layer, (1 + w) RMSNorms, GELU-tanh."""
    config = transformers.Gemma2Config(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                       max_position_embeddings=64, sliding_window=8, attn_logit_softcapping=5.0,
                                       final_logit_softcapping=30.0, query_pre_attn_scalar=32)
    return transformers.Gemma2ForCausalLM(config), (torch.randint(0, 64, (1, 12)),)


def test_gemma2_soft_capped_eager_attention_is_routed(emulator):
    torch.manual_seed(0)
    model, inputs = gemma2()
    # 4 norms per layer + final, less the two a residual add fuses into; the attention function with its cap
    check_optimize(model.eval(), inputs, {"rms_norm": 9, "add_rms_norm": 2, "rope+softmax": 2, "geglu_split": 2})


def test_optimized_gemma2_generates_the_same_tokens(emulator, monkeypatch):
    """generate(): prefill and one-token steps through the cache (a sliding-window layer past its window of 8),
    every attention call through the stand-in with the cap: 32 greedy tokens equal to the model's own."""
    calls = _greedy_tokens_kept(gemma2, 32, monkeypatch, "softmax", "kv_cache_append")
    # 2 layers x (prefill + 31 steps); the full-attention layer's cache appends in place at every step (the
    # sliding-window layer's cache is its own)
    assert calls == {"softmax": 2 * 32, "kv_cache_append": 31}


def test_optimized_gemma2_survives_deepcopy_and_torch_save(emulator, monkeypatch):
    torch.manual_seed(0)
    model, inputs = gemma2()
    want = model.eval()(*inputs).logits
    mpskernels.optimize(model, example_inputs=inputs)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for copied in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        calls = _counting(monkeypatch, "softmax")
        torch.testing.assert_close(copied(*inputs).logits, want, rtol=1e-4, atol=1e-5)
        assert calls == {"softmax": 2}  # the copy's own attention modules route their eager function
        attention = copied.model.layers[0].self_attn
        routed = attention.forward.replacement().forward  # rebuilt for the copy, not the original's
        assert attention.forward.module is attention and routed.module is attention and routed.eager


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_compile_backend_gives_the_same_result(name, emulator):
    build, _ = MODELS[name]
    torch.manual_seed(0)
    model, inputs = build()
    model.eval()
    reference = first_tensor(model(*inputs))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="mpskernels")
    torch.testing.assert_close(first_tensor(compiled(*inputs)), reference, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_compiled_llama_runs_its_norms_rotary_attention_and_mlp_as_mpskernels_ops(emulator, monkeypatch):
    import mpskernels.compile as backend_module

    graphs = []
    real = backend_module._compile_rest
    monkeypatch.setattr(backend_module, "_compile_rest",
                        lambda gm, inputs: (graphs.append([str(n.target) for n in gm.graph.nodes]),
                                            real(gm, inputs))[1])
    torch.manual_seed(0)
    model, inputs = llama()
    model.eval()
    torch._dynamo.reset()
    torch.compile(model, backend="mpskernels")(*inputs)
    torch._dynamo.reset()
    ops = [t.split(".")[1] for t in graphs[0] if t.startswith("mpskernels.")]
    # per layer: input norm (+ residual from layer 1 on), rotary, attention, post-attention norm with the
    # residual add, SiLU; then the final norm with the last residual add
    assert {op: ops.count(op) for op in set(ops)} == {"rms_norm": 1, "add_rms_norm": 4, "rope": 2, "attention": 2,
                                                      "silu": 2}
