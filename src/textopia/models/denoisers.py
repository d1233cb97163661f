"""The denoisers of latent diffusion and what conditions them: the timestep embedding, the idea
encoder, a residual MLP for a flat latent (the text VAE's 32 numbers) and a diffusion transformer
for a latent sequence (the prompt autoencoder's K vectors).

Both denoisers take ``(z_t (B, nz), timesteps (B,), idea (B, H))`` and return (B, nz); the
transformer views z as (B, K, nz / K). Sources: Peebles & Xie 2023, "Scalable Diffusion Models
with Transformers" (DiT, adaLN-Zero), Ho et al. 2020 (the timestep embedding of DDPM).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim) float32: [cos(t·f_i), sin(t·f_i)].

    The Transformer's position encoding (Vaswani et al. 2017, §3.5) as DDPM uses it for t
    (Ho et al. 2020, appendix B); frequencies f_i = max_period^(−i / (dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class IdeaEncoder(nn.Module):
    """An idea's tokens -> one vector c (B, H); no idea -> the learned null idea.

    ::

        ids (B, L) ─▶ embedding (B, L, E) ─▶ [mean; max] over non-pad tokens (B, 2E) ─▶ MLP ─▶ c (B, H)

    Why a pooled bag of tokens: an idea is 1 to 4 words or two-word phrases in random order
    (:func:`textopia.data.ideas.derive_idea` shuffles them), so an order-free encoder fits the
    data and costs nothing; the mean says what the idea is about, the max keeps a rare word
    from being averaged away. The embedding has the VAE's width and starts as a copy of the
    VAE's table (the training script does this), which already places related words close
    together; it stays trainable. The null idea is a learned vector, the unconditional branch
    of classifier-free guidance (Ho & Salimans 2022, §3.2).

    Args:
        vocab_size: ``len(tokenizer)``; n_embd: E, the VAE's embedding width; hidden: MLP width;
        out_dim: H; pad_id: the padding token (ignored by the pooling).
    """

    def __init__(self, vocab_size: int, n_embd: int, hidden: int, out_dim: int, pad_id: int) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.mlp = nn.Sequential(nn.Linear(2 * n_embd, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))
        self.null = nn.Parameter(torch.randn(out_dim) * 0.02)  # (H,) the "no idea" vector

    def forward(self, ids: torch.Tensor | None, has_idea: torch.Tensor | None = None,
                batch_size: int | None = None) -> torch.Tensor:
        """Encode ideas.

        Args:
            ids: (B, L) int64 idea tokens padded with ``pad_id``, or None (no idea at all).
            has_idea: (B,) bool; False rows get the null idea (so do rows with no token).
            batch_size: B when ``ids`` is None.

        Returns:
            c: (B, H) float32.
        """
        if ids is None:
            return self.null[None, :].expand(int(batch_size or 1), -1)
        mask = ids != self.pad_id  # (B, L)
        keep = mask.any(dim=1) if has_idea is None else has_idea & mask.any(dim=1)  # (B,)
        x = self.embed(ids).float()  # (B, L, E)
        m = mask[..., None].float()
        mean = (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, E)
        mx = x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)  # (B, E)
        mx = torch.where(mask.any(dim=1, keepdim=True), mx, torch.zeros_like(mx))
        c = self.mlp(torch.cat([mean, mx], dim=-1))  # (B, H)
        return torch.where(keep[:, None], c, self.null[None, :].to(c.dtype))


class AdaLNBlock(nn.Module):
    """A residual MLP block whose LayerNorm is modulated by the conditioning (adaLN-Zero).

    ``h + gate(c) ⊙ MLP(LN(h) ⊙ (1 + scale(c)) + shift(c))``; shift, scale and gate start at
    zero, so every block starts as the identity (Peebles & Xie 2023, §3.2).
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """h: (B, H) hidden state; c: (B, H) conditioning (time + idea), already through SiLU."""
        shift, scale, gate = self.modulation(c).chunk(3, dim=-1)  # each (B, H)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class Denoiser(nn.Module):
    """ε_θ(z_t, t, c) (or v_θ): a residual MLP conditioned through adaLN in every block.

    ::

        z_t (B, nz) ─▶ Linear ─▶ h (B, H) ─▶ [AdaLNBlock(h, c)] × n_blocks ─▶ adaLN ─▶ Linear ─▶ (B, nz)
        c = MLP(sinusoid(t)) + idea vector  (B, H)

    Why an MLP: z is one flat nz-vector (32 numbers) with no sequence or spatial structure, so
    attention or convolutions (the U-Net of image LDMs) have nothing to exploit; what matters
    is that t and the idea reach every layer, which adaLN does. The output layer starts at zero
    (the first prediction is 0, the mean of ε), as do the block gates.
    """

    def __init__(self, nz: int, width: int, n_blocks: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(nz, width)
        self.blocks = nn.ModuleList(AdaLNBlock(width, dropout) for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, nz)
        for layer in (self.final_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor, timesteps: torch.Tensor, idea: torch.Tensor) -> torch.Tensor:
        """z: (B, nz) noisy latents; timesteps: (B,) int64 in [0, T); idea: (B, H). Returns (B, nz)."""
        c = F.silu(self.time_mlp(timestep_embedding(timesteps, self.time_dim)) + idea)  # (B, H)
        h = self.inp(z)  # (B, H)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        return self.out(self.final_norm(h) * (1 + scale) + shift)  # (B, nz)



def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, K, W) ⊙ (1 + scale) + shift, with shift and scale (B, W) broadcast over K."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DiTBlock(nn.Module):
    """A transformer block with adaLN-Zero conditioning (Peebles & Xie 2023, §3.2, fig. 3)::

        h = h + gate₁(c) ⊙ Attention(modulate(LN(h), shift₁(c), scale₁(c)))
        h = h + gate₂(c) ⊙ MLP(modulate(LN(h), shift₂(c), scale₂(c)))

    The modulation starts at zero, so the block starts as the identity.
    """

    def __init__(self, width: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, n_head, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """h: (B, K, W) latent tokens; c: (B, W) conditioning (time + idea), through SiLU. Returns (B, K, W)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)  # each (B, W)
        x = _modulate(self.norm1(h), shift1, scale1)
        h = h + gate1[:, None, :] * self.attn(x, x, x, need_weights=False)[0]
        return h + gate2[:, None, :] * self.mlp(_modulate(self.norm2(h), shift2, scale2))


class TransformerDenoiser(nn.Module):
    """ε_θ(z_t, t, c) over a latent sequence: a small diffusion transformer (DiT).

    ::

        z_t (B, K·dz) ─▶ view (B, K, dz) ─▶ Linear + position (B, K, W) ─▶ [DiTBlock(h, c)] × n_blocks
            ─▶ adaLN ─▶ Linear ─▶ (B, K, dz) ─▶ (B, K·dz)
        c = SiLU(MLP(sinusoid(t)) + idea vector)  (B, W)

    Why attention here: the K latent vectors of the prompt autoencoder each hold part of one
    prompt (subject, style, artists), so the denoiser must let them agree with each other; the
    output layer starts at zero (the first prediction is 0, the mean of ε).
    """

    def __init__(self, nz: int, n_tokens: int, width: int, n_blocks: int, n_head: int, time_dim: int,
                 dropout: float) -> None:
        super().__init__()
        if nz % n_tokens:
            raise ValueError(f"latent_dim {nz} is not a multiple of the {n_tokens} latent tokens")
        self.n_tokens, self.token_dim, self.time_dim = n_tokens, nz // n_tokens, time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(self.token_dim, width)
        self.positions = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(width, n_head, dropout) for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, self.token_dim)
        for layer in (self.final_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor, timesteps: torch.Tensor, idea: torch.Tensor) -> torch.Tensor:
        """z: (B, K·dz) noisy latents; timesteps: (B,) int64 in [0, T); idea: (B, W). Returns (B, K·dz)."""
        b = z.size(0)
        c = F.silu(self.time_mlp(timestep_embedding(timesteps, self.time_dim)) + idea)  # (B, W)
        h = self.inp(z.view(b, self.n_tokens, self.token_dim)) + self.positions[None]  # (B, K, W)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        return self.out(_modulate(self.final_norm(h), shift, scale)).reshape(b, -1)
