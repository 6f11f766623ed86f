import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """One decode step of grouped-query attention: a single query per head against a KV cache with fewer
    heads (each KV head serves heads // kv_heads query heads)."""

    def __init__(self, heads: int, kv_heads: int):
        super().__init__()
        self.groups = heads // kv_heads

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        k = k_cache.repeat_interleave(self.groups, dim=1)
        v = v_cache.repeat_interleave(self.groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v)


batch_size = 8
kv_heads = 8
groups = 4
heads = kv_heads * groups
cache_len = 2048
head_dim = 128


def get_inputs():
    q = torch.randn(batch_size, heads, 1, head_dim)
    k = torch.randn(batch_size, kv_heads, cache_len, head_dim)
    v = torch.randn(batch_size, kv_heads, cache_len, head_dim)
    return [q, k, v]


def get_init_inputs():
    return [heads, kv_heads]
