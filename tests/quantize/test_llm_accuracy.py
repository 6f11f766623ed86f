"""Accuracy of a quantised decoder: a tiny Hugging Face Llama built from a config with random weights (no
download). int8 generates the same greedy tokens as the unquantised model; int4's logits stay within the bounds
measured here and documented in docs/quantize.md. One prefill and one decode step also run on the emulator, so
the kernels (qmm, then qmv) compute the quantised model's logits."""

import copy

import pytest
import torch

import mpskernels
from mpskernels import runtime
from mpskernels.runtime import use_backend

transformers = pytest.importorskip("transformers")

PROMPT, NEW_TOKENS = 8, 24
# Measured with the model below (seed 0), relative Frobenius error of the logits over prompt + generated tokens:
# int8: 0.009-0.011, int4: g32 0.13, g64 0.15, g128 0.17 (docs/quantize.md). Bounds with a margin above that.
INT4_RELATIVE_BOUND = {32: 0.2, 64: 0.22, 128: 0.25}
INT8_RELATIVE_BOUND = 0.02


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config).eval()
    prompt = torch.randint(0, 512, (1, PROMPT))
    with torch.no_grad():
        tokens = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        logits = model(tokens).logits
    return model, prompt, tokens, logits


def relative(a, b):
    return float((a - b).norm() / b.norm())


def test_int8_generates_the_same_greedy_tokens(llama):
    model, prompt, tokens, logits = llama
    q = mpskernels.quantize(copy.deepcopy(model), bits=8, group_size=64)
    assert len(q.mpskernels_quantize_report.quantized) == 14  # 7 projections x 2 layers; lm_head kept
    with torch.no_grad():
        out = q.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        assert relative(q(tokens).logits, logits) < INT8_RELATIVE_BOUND
    assert torch.equal(out, tokens)


@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_int4_logits_stay_within_the_measured_bound(llama, group_size):
    model, _, tokens, logits = llama
    q = mpskernels.quantize(copy.deepcopy(model), bits=4, group_size=group_size)
    with torch.no_grad():
        err = relative(q(tokens).logits, logits)
    assert err < INT4_RELATIVE_BOUND[group_size]
    assert err > INT8_RELATIVE_BOUND  # 4 bits are really coarser than 8: the model was quantised


def test_the_kernels_compute_the_quantised_model_on_the_emulator(llama, monkeypatch):
    """Prefill of 12 tokens (the tiled kernel) and one decode step with the KV cache (the matrix-vector kernel)
    on the emulator give the reference backend's logits to the dtype's accuracy."""
    model, _, tokens, _ = llama
    q = mpskernels.quantize(copy.deepcopy(model), bits=4, group_size=64)
    prefill, step = tokens[:, :12], tokens[:, 12:13]
    emulator = runtime.BACKENDS["emulator"]
    launched = []

    def launch(family, plan, tensors, _launch=emulator.launch):
        launched.append(plan.kernel)
        _launch(family, plan, tensors)

    monkeypatch.setattr(emulator, "launch", launch)
    with torch.no_grad():
        want = q(prefill, use_cache=True)
        want_step = q(step, past_key_values=want.past_key_values).logits
        with use_backend("emulator"):
            got = q(prefill, use_cache=True)
            got_step = q(step, past_key_values=got.past_key_values).logits
    assert launched == ["quantized_qmm_4bit_float32"] * 14 + ["quantized_qmv_4bit_float32"] * 14
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_step, want_step, rtol=1e-4, atol=1e-5)
