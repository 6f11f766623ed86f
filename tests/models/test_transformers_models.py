"""optimize() and the compile backend on real `transformers` model classes, built from small configs with random
weights (no downloads). Needs the optional `models` extra; skipped without transformers."""

import pytest
import torch

import mpskernels

from .checks import check_optimize, first_tensor

transformers = pytest.importorskip("transformers")


def llama():
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config), (torch.randint(0, 64, (1, 9)),)


def gpt2():
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config), (torch.randint(0, 64, (1, 9)),)


def bert():
    config = transformers.BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return transformers.BertModel(config), (torch.randint(0, 64, (1, 9)),)


def vit():
    config = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=128)
    return transformers.ViTModel(config), (torch.randn(1, 3, 16, 16),)


# model -> swapped modules per kernel (2 layers each)
MODELS = {
    "llama": (llama, {"rms_norm": 5, "swiglu": 2}),  # 2 per layer + final norm; the gated MLPs
    "gpt2": (gpt2, {"layer_norm": 5, "gelu": 2}),  # ln_1, ln_2 per layer + ln_f; NewGELU recognised as gelu-tanh
    "bert": (bert, {"layer_norm": 5, "gelu": 2}),  # embeddings + 2 per layer; the intermediate activation
    "vit": (vit, {"layer_norm": 5, "gelu": 2}),  # 2 per layer + final; the intermediate activation
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
