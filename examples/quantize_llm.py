"""Quantise a Hugging Face decoder's linear layers to int8 / int4 with mpskernels and compare its generations with
the unquantised model's (needs `pip install transformers`).

Run: python examples/quantize_llm.py [--tiny] [--bits 4] [--group-size 64]
The model is built from a config with random weights (no download); use LlamaForCausalLM.from_pretrained(...) for
real ones. On a Mac the quantised layers run the Metal kernels on the GPU; elsewhere they run the PyTorch reference
(dequantise, then matmul), and one prefill plus one decode step also run on the CPU emulator, which executes the
same Metal kernels.
"""

import argparse
import copy

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import mpskernels

parser = argparse.ArgumentParser()
parser.add_argument("--tiny", action="store_true", help="a 2-layer model (used by the tests)")
parser.add_argument("--bits", type=int, default=4, choices=(4, 8))
parser.add_argument("--group-size", type=int, default=64, choices=(32, 64, 128))
parser.add_argument("--tokens", type=int, default=24)
args = parser.parse_args()

# 1. Build: a small Llama with random weights.
config = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
if not args.tiny:
    config.num_hidden_layers, config.hidden_size, config.intermediate_size = 4, 512, 1408
torch.manual_seed(0)
device = "mps" if torch.backends.mps.is_available() else "cpu"
model = LlamaForCausalLM(config).eval().to(device)
prompt = torch.randint(0, config.vocab_size, (1, 8), device=device)

# 2. Quantise a copy (quantisation is in place and cannot be undone: keep the original to compare).
quantised = mpskernels.quantize(copy.deepcopy(model), bits=args.bits, group_size=args.group_size)
print(quantised.mpskernels_quantize_report)

# 3. Generate with both, greedily, and compare.
with torch.no_grad():
    want = model.generate(prompt, max_new_tokens=args.tokens, do_sample=False, pad_token_id=0)
    got = quantised.generate(prompt, max_new_tokens=args.tokens, do_sample=False, pad_token_id=0)
    logits, reference = quantised(want).logits, model(want).logits
same = int((got[0, prompt.shape[1]:] == want[0, prompt.shape[1]:]).sum())
print(f"greedy tokens identical to the unquantised model: {same} of {args.tokens}")
print(f"logits: max |difference| {float((logits - reference).abs().max()):.4g}, relative Frobenius "
      f"{float((logits - reference).norm() / reference.norm()):.4g}")

# 4. Without an Apple GPU, run the Metal kernels themselves on the CPU emulator for one prefill and one decode step.
if device == "cpu":
    with torch.no_grad():
        step = want[:, -1:]
        plain = quantised(want[:, :-1], use_cache=True)
        plain_step = quantised(step, past_key_values=plain.past_key_values).logits
        with mpskernels.use_backend("emulator"):
            emulated = quantised(want[:, :-1], use_cache=True)
            emulated_step = quantised(step, past_key_values=emulated.past_key_values).logits
    print(f"Metal kernels on the emulator vs the reference: prefill {float((emulated.logits - plain.logits).abs().max()):.3g}, "
          f"decode step {float((emulated_step - plain_step).abs().max()):.3g} (max |difference| of logits)")
