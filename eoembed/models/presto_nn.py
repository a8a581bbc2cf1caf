"""Presto encoder architecture (Tseng et al. 2023), written from the paper and the checkpoint's tensors.

One pixel time series of ``T <= 24`` monthly steps x 17 normalised channels becomes a set of tokens:

* one token per (band group, time step) for the 8 time-varying groups (S1, S2_RGB, S2_Red_Edge, S2_NIR_10m,
  S2_NIR_20m, S2_SWIR, ERA5, NDVI): ``Linear(group) + [month | channel | position]`` encodings,
* ONE token for the static SRTM group (taken from time step 0) carrying only its channel encoding,
* one Dynamic World token per step (class embedding, class 9 = missing = masked),
* one lat/lon token (``Linear`` of the 3-D unit vector), which carries no encoding.

A token is masked when any channel of its group is masked (SRTM: at step 0); masked tokens take no part in
attention (as keys) nor in the final mean. The output is ``LayerNorm(mean of the unmasked tokens)`` after the
Transformer blocks (pre-norm ViT blocks, exact GELU). Token order does not matter (no order-dependent operation
besides the added encodings), so tokens are kept in group-major order and masked ones are excluded by an
attention mask instead of being gathered away; columns masked for every row of the batch are dropped first.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Presto's 17 input channels, in model order.
PRESTO_BANDS: tuple[str, ...] = (
    "VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
    "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI",
)
#: Normalisation ``(x + ADD) / DIV`` per channel (NDVI is computed in [−1, 1] and left as is).
PRESTO_ADD: tuple[float, ...] = (25.0, 25.0) + (0.0,) * 10 + (-272.15, 0.0, 0.0, 0.0, 0.0)
PRESTO_DIV: tuple[float, ...] = (25.0, 25.0) + (1e4,) * 10 + (35.0, 0.03, 2000.0, 50.0, 1.0)

#: Band groups -> channel indices into PRESTO_BANDS; the order gives each group's channel-encoding row.
BAND_GROUPS: dict[str, tuple[int, ...]] = {
    "S1": (0, 1),
    "S2_RGB": (2, 3, 4),
    "S2_Red_Edge": (5, 6, 7),
    "S2_NIR_10m": (8,),
    "S2_NIR_20m": (9,),
    "S2_SWIR": (10, 11),
    "ERA5": (12, 13),
    "SRTM": (14, 15),
    "NDVI": (16,),
}
STATIC_GROUP = "SRTM"
NUM_DW_CLASSES = 9
#: Dynamic World value meaning "unknown"; such tokens are masked.
DW_MISSING = NUM_DW_CLASSES
MAX_SEQ_LEN = 24


def sinusoid_table(n_positions: int, dim: int, base: float = 1000.0) -> torch.Tensor:
    """Transformer sine/cosine table (n_positions, dim): sin on even, cos on odd features."""
    pos = np.arange(n_positions, dtype=np.float64)[:, None]
    j = np.arange(dim)
    angle = pos / np.power(base, 2 * (j // 2) / dim)
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.tensor(table, dtype=torch.float32)


def month_table(dim: int) -> torch.Tensor:
    """Month encoding (12, dim) for months 0 (January) .. 11: dim/2 copies of sin, then of cos, of 2*pi*m/12."""
    if dim % 2:
        raise ValueError(f"month encoding size must be even, got {dim}")
    angle = np.arange(12, dtype=np.float64) * (2 * np.pi / 12)
    half = dim // 2
    table = np.concatenate([np.repeat(np.sin(angle)[:, None], half, 1), np.repeat(np.cos(angle)[:, None], half, 1)], 1)
    return torch.tensor(table, dtype=torch.float32)


def latlon_to_xyz(latlons: torch.Tensor) -> torch.Tensor:
    """(..., 2) degrees (lat, lon) -> (..., 3) unit vector on the sphere."""
    rad = latlons * (math.pi / 180)
    lat, lon = rad[..., 0], rad[..., 1]
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and an optional key mask."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_valid is None else key_valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm Transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_valid)
        return x + self.mlp(self.norm2(x))


class PrestoEncoder(nn.Module):
    """The Presto encoder; parameter names match the ``encoder.*`` tensors of ``default_model.pt``.

    ``forward(x, dynamic_world, latlons, month, mask=None, latlon_valid=None) -> (B, embed_dim)``:
    x (B, T, 17) normalised, dynamic_world (B, T) int in 0..9, latlons (B, 2) degrees, month (B, T) int in
    0..11 (0 = January), mask (B, T, 17) with 1/True = missing. ``latlon_valid`` (B,) bool lets unknown
    locations drop their lat/lon token (an eoembed extension; the original always has it). Rows with no
    unmasked token at all give NaN.
    """

    def __init__(self, embed_dim: int = 128, depth: int = 2, num_heads: int = 8, mlp_ratio: float = 4.0,
                 channel_embed_ratio: float = 0.25, month_embed_ratio: float = 0.25,
                 max_seq_len: int = MAX_SEQ_LEN):
        super().__init__()
        self.embed_dim = embed_dim
        self.max_seq_len = max_seq_len
        self.group_names = list(BAND_GROUPS)
        self.eo_patch_embed = nn.ModuleDict({g: nn.Linear(len(idx), embed_dim) for g, idx in BAND_GROUPS.items()})
        self.dw_embed = nn.Embedding(NUM_DW_CLASSES + 1, embed_dim)
        self.latlon_embed = nn.Linear(3, embed_dim)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        ch_dim = int(embed_dim * channel_embed_ratio)
        month_dim = int(embed_dim * month_embed_ratio)
        pos_dim = int(embed_dim * (1 - channel_embed_ratio - month_embed_ratio))
        if ch_dim + month_dim + pos_dim != embed_dim:
            raise ValueError(f"encoding sizes {month_dim}+{ch_dim}+{pos_dim} do not add up to width {embed_dim}")
        # Fixed (non-trained) tables; they are stored in the checkpoint too and loaded from it.
        self.pos_embed = nn.Parameter(sinusoid_table(max_seq_len, pos_dim)[None], requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(month_dim), freeze=True)
        self.channel_embed = nn.Embedding(len(BAND_GROUPS) + 1, ch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def tokens(self, x: torch.Tensor, dynamic_world: torch.Tensor, latlons: torch.Tensor, month: torch.Tensor,
               mask: torch.Tensor | None = None, latlon_valid: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (B, N, D) and their validity (B, N) bool, lat/lon token first."""
        b, t, c = x.shape
        if c != len(PRESTO_BANDS):
            raise ValueError(f"Presto expects {len(PRESTO_BANDS)} channels {PRESTO_BANDS}, got {c}")
        if t > self.max_seq_len:
            raise ValueError(f"Presto handles at most {self.max_seq_len} time steps, got {t}")
        masked = torch.zeros(b, t, c, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        month_enc = self.month_embed(month.long())  # (B, T, m)
        pos_enc = self.pos_embed[:, :t].expand(b, -1, -1)  # (B, T, p)
        toks, invalid = [], []
        for gi, (g, idx) in enumerate(BAND_GROUPS.items()):
            tok = self.eo_patch_embed[g](x[:, :, list(idx)])
            ch = self.channel_embed.weight[gi].expand(b, t, -1)
            gmask = masked[:, :, list(idx)].any(-1)
            if g == STATIC_GROUP:
                enc = torch.cat([torch.zeros_like(month_enc[:, :1]), ch[:, :1], torch.zeros_like(pos_enc[:, :1])], -1)
                tok, gmask = tok[:, :1] + enc, gmask[:, :1]
            else:
                tok = tok + torch.cat([month_enc, ch, pos_enc], -1)
            toks.append(tok)
            invalid.append(gmask)
        dw = dynamic_world.long()
        ch = self.channel_embed.weight[len(BAND_GROUPS)].expand(b, t, -1)
        toks.append(self.dw_embed(dw) + torch.cat([month_enc, ch, pos_enc], -1))
        invalid.append(dw == DW_MISSING)
        ll = self.latlon_embed(latlon_to_xyz(latlons.to(x.dtype)))[:, None]
        ll_valid = (torch.ones(b, dtype=torch.bool, device=x.device) if latlon_valid is None
                    else latlon_valid.bool().to(x.device))
        tokens = torch.cat([ll] + toks, 1)
        valid = torch.cat([ll_valid[:, None], ~torch.cat(invalid, 1)], 1)
        return tokens, valid

    def forward(self, x: torch.Tensor, dynamic_world: torch.Tensor, latlons: torch.Tensor, month: torch.Tensor,
                mask: torch.Tensor | None = None, latlon_valid: torch.Tensor | None = None) -> torch.Tensor:
        tokens, valid = self.tokens(x, dynamic_world, latlons, month, mask, latlon_valid)
        keep = valid.any(0)
        if not bool(keep.all()):  # drop token columns that are masked in every row (exact, saves compute)
            tokens, valid = tokens[:, keep], valid[:, keep]
        if tokens.shape[1] == 0:
            return torch.full((x.shape[0], self.embed_dim), float("nan"), dtype=x.dtype, device=x.device)
        key_valid = None if bool(valid.all()) else valid
        if key_valid is not None:
            # rows without any valid token would make softmax NaN; let them attend to all, they become NaN below
            key_valid = key_valid | ~valid.any(1, keepdim=True)
        h = tokens
        for blk in self.blocks:
            h = blk(h, key_valid)
        w = valid.to(h.dtype)[..., None]
        mean = (h * w).sum(1) / w.sum(1)  # 0/0 -> NaN where no valid token
        return self.norm(mean)
