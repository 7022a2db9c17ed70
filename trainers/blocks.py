"""Building blocks shared by every architecture: config, embeddings, norm, attention, MLP."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from trainers.accounting import Accounting
from trainers.architectures import account

IGNORE = -100  # target id of positions that carry no loss (F.cross_entropy's ignore_index)


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model of any architecture; its accounting is derived once."""

    architecture: str
    vocab_size: int
    seq_len: int  # tokens of text per sequence
    n_layer: int  # blocks (per stack, for the encoder-decoder)
    n_embd: int
    n_head: int
    dropout: float = 0.0  # pre-training at these scales sees each token about once: no dropout
    accounting: Accounting = field(init=False)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        shape = (self.n_layer, self.n_embd, self.vocab_size, self.seq_len)
        object.__setattr__(self, "accounting", account(self.architecture, *shape))


class Embeddings(nn.Module):
    """Token plus learned absolute position embeddings, then dropout."""

    def __init__(self, tokens: nn.Embedding, n_positions: int, dropout: float):
        super().__init__()
        self.tokens = tokens  # shared with the output projection (and both stacks of encdec)
        self.positions = nn.Embedding(n_positions, tokens.embedding_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.drop(self.tokens(idx) + self.positions(pos))  # (B, T, C)


class LayerNorm(nn.Module):
    """LayerNorm with a learnable scale and bias (GPT-2 keeps the bias)."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def _heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`; causal or bidirectional."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, causal: bool):
        super().__init__()
        self.n_head = n_head
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.proj.residual = True  # marks the layer whose init is scaled by depth
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """`keys` (B, T) marks the positions that may be attended to (padding is False);
        causal attention needs none when the padding is on the right."""
        B, T, C = x.shape
        q, k, v = (_heads(t, self.n_head) for t in self.qkv(x).split(C, dim=2))
        mask = None if keys is None else keys[:, None, None, :]
        if mask is not None and self.causal:  # SDPA takes a mask or is_causal, not both
            mask = mask & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and mask is None,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class CrossAttention(nn.Module):
    """Multi-head attention from a decoder's positions (queries) to the encoder's (keys, values)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout
        self.q = nn.Linear(n_embd, n_embd)
        self.kv = nn.Linear(n_embd, 2 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.proj.residual = True
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = _heads(self.q(x), self.n_head)  # (B, nh, T, hs)
        k, v = (_heads(t, self.n_head) for t in self.kv(memory).split(C, dim=2))  # (B, nh, S, hs)
        mask = None if keys is None else keys[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward layer: 4x expansion and GELU, as in GPT-2."""

    def __init__(self, n_embd: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.proj = nn.Linear(4 * n_embd, n_embd)
        self.proj.residual = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, causal: bool):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, dropout, causal)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), keys)
        return x + self.mlp(self.ln_2(x))


class CrossBlock(nn.Module):
    """A decoder block of an encoder-decoder: causal self-attention, cross-attention, MLP."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, dropout, causal=True)
        self.ln_2 = LayerNorm(n_embd)
        self.cross = CrossAttention(n_embd, n_head, dropout)
        self.ln_3 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.cross(self.ln_2(x), memory, memory_keys)
        return x + self.mlp(self.ln_3(x))


class TransformerLM(nn.Module):
    """Token and position embeddings, a stack of blocks, a final norm and an output projection
    tied to the token embedding: GPT's layout when causal, BERT's when not."""

    def __init__(self, config: ModelConfig, causal: bool):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.embed = Embeddings(self.wte, config.seq_len, config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, causal=causal)
            for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(config.n_embd)
        init_weights(self, config.n_layer)

    def count_params(self, non_embedding: bool = True) -> int:
        """Measured parameter count; without embeddings it is N of the scaling laws."""
        return count_params(self, non_embedding)

    def hidden(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C) of `idx` (B, T); `keys` marks the real positions of a
        padded batch."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, keys)
        return self.ln_f(x)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of final hidden states (..., C): the projection tied to the token table."""
        return F.linear(h, self.wte.weight)

    def forward(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) at each position of `idx` (B, T)."""
        return self.project(self.hidden(idx, keys))


def count_params(model: nn.Module, non_embedding: bool = True) -> int:
    """Measured parameter count; without embeddings it is N of the scaling laws."""
    total = sum(p.numel() for p in model.parameters())
    if non_embedding:
        total -= sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    return total


def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2·n_layer)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            std = 0.02 / (2 * n_layer) ** 0.5 if getattr(m, "residual", False) else 0.02
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
