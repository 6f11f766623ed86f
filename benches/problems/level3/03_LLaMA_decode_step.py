import torch
import torch.nn as nn
import torch.nn.functional as F


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(head_dim: int, seq_len: int, base: float = 10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = torch.outer(torch.arange(seq_len).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class RMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (self.weight * h).to(x.dtype)


class LlamaAttention(nn.Module):
    def __init__(self, heads: int, kv_heads: int, head_dim: int, seq_len: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        hidden = heads * head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        cos, sin = rope_tables(head_dim, seq_len)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.cos[:s], self.sin[:s]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class LlamaMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class Model(nn.Module):
    """One decode step of a LLaMA layer: a single new token attends to a KV cache (passed in) plus itself."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int, intermediate: int, cache_len: int):
        super().__init__()
        hidden = heads * head_dim
        self.input_layernorm = RMSNorm(hidden)
        self.attn = LlamaAttention(heads, kv_heads, head_dim, cache_len + 1)
        self.post_attention_layernorm = RMSNorm(hidden)
        self.mlp = LlamaMLP(hidden, intermediate)

    def attend(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        a, b = self.attn, x.shape[0]
        position = k_cache.shape[2]
        q = a.q_proj(x).view(b, 1, a.heads, a.head_dim).transpose(1, 2)
        k = a.k_proj(x).view(b, 1, a.kv_heads, a.head_dim).transpose(1, 2)
        v = a.v_proj(x).view(b, 1, a.kv_heads, a.head_dim).transpose(1, 2)
        cos, sin = a.cos[position], a.sin[position]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = torch.cat((k_cache, k), dim=2).repeat_interleave(a.heads // a.kv_heads, dim=1)
        v = torch.cat((v_cache, v), dim=2).repeat_interleave(a.heads // a.kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q, k, v)
        return a.o_proj(out.transpose(1, 2).reshape(b, 1, -1))

    def forward(self, x, k_cache, v_cache):
        x = x + self.attend(self.input_layernorm(x), k_cache, v_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


batch_size = 8
cache_len = 2048
kv_heads = 4
groups = 4
heads = kv_heads * groups
head_dim = 128
intermediate = 5632


def get_inputs():
    x = torch.randn(batch_size, 1, heads * head_dim)
    k_cache = torch.randn(batch_size, kv_heads, cache_len, head_dim)
    v_cache = torch.randn(batch_size, kv_heads, cache_len, head_dim)
    return [x, k_cache, v_cache]


def get_init_inputs():
    return [heads, kv_heads, head_dim, intermediate, cache_len]
