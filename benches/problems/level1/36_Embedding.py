import torch
import torch.nn as nn


class Model(nn.Module):
    """Token embedding lookup (integer indices in, vectors out)."""

    def __init__(self, vocab_size: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


batch_size = 8
seq_len = 1024
vocab_size = 32000
hidden = 1024


def get_inputs():
    return [torch.randint(0, vocab_size, (batch_size, seq_len))]


def get_init_inputs():
    return [vocab_size, hidden]
