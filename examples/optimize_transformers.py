"""Optimize a Hugging Face `transformers` model with mpskernels (needs `pip install transformers`).

Run: python examples/optimize_transformers.py [--tiny]
On a Mac the kernels run on the GPU. Elsewhere the script uses the CPU emulator, which runs the same Metal kernels
(slowly), so the example works anywhere.
"""

import argparse

import contextlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import mpskernels

parser = argparse.ArgumentParser()
parser.add_argument("--tiny", action="store_true", help="a 2-layer model with random weights (used by the tests)")
args = parser.parse_args()

config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2)
if not args.tiny:
    config.num_hidden_layers, config.hidden_size, config.intermediate_size = 4, 256, 688
model = LlamaForCausalLM(config).eval()  # or LlamaForCausalLM.from_pretrained(...) for real weights
device = "mps" if torch.backends.mps.is_available() else "cpu"
model = model.to(device)
ids = torch.randint(0, config.vocab_size, (1, 12), device=device)

# No Apple GPU: run the same Metal kernels on the CPU emulator.
kernels_on = mpskernels.use_backend("emulator") if device == "cpu" else contextlib.nullcontext()
with torch.no_grad(), kernels_on:
    before = model(ids).logits
    mpskernels.optimize(model, example_inputs=(ids,))  # swaps, checks each swap on these inputs, reports
    after = model(ids).logits

print(model.mpskernels_report)
print("max difference in logits:", (after - before).abs().max().item())
