import torch
import torch.nn as nn


class Model(nn.Module):
    """An MLP-Mixer block: LayerNorm + token-mixing MLP (across patches), LayerNorm + channel-mixing MLP,
    both with GELU and residuals."""

    def __init__(self, patches: int, channels: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.token_mlp = nn.Sequential(nn.Linear(patches, 2 * patches), nn.GELU(), nn.Linear(2 * patches, patches))
        self.norm2 = nn.LayerNorm(channels)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(),
                                         nn.Linear(4 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


batch_size = 16
patches = 196
channels = 512


def get_inputs():
    return [torch.randn(batch_size, patches, channels)]


def get_init_inputs():
    return [patches, channels]
