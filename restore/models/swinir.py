"""SwinIR (Liang et al. 2021): image restoration with shifted-window transformer blocks.

State-dict keys, buffers and the forward pass follow the original release (JingyunLiang/SwinIR),
so published SwinIR weights load here and our weights load in spandrel. Window attention is the
original ``softmax(q k^T * scale + bias) v`` (softmax in float32, so float16 is safe), computed
through ``scaled_dot_product_attention`` for CPU inference, where that is faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import PixelShuffleUpsample
from .registry import register_model

UPSAMPLERS = ("pixelshuffledirect", "pixelshuffle", "")
RESI_CONNECTIONS = ("1conv", "3conv")


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Split ``(B, H, W, C)`` into windows ``(B * nW, window_size**2, C)``, row-major over windows."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, window_size**2, C)`` -> ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window_size: int) -> torch.Tensor:
    """``(N, N)`` int64 index into the ``((2 * ws - 1)**2, heads)`` bias table, ``N = ws**2``."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)  # N, N, 2
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def shifted_window_mask(
    h: int, w: int, window_size: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """Additive attention mask ``(nW, N, N)`` for windows of an ``h x w`` map rolled by ``-shift``.

    After the cyclic roll, a window at the bottom/right edge holds pixels from up to 3x3 regions that
    were not neighbours; pairs from different regions get -100 (as the original), others 0.
    """

    def region(size: int) -> torch.Tensor:
        idx = torch.arange(size, device=device)
        return (idx >= size - window_size).long() + (idx >= size - shift).long()

    labels = (3 * region(h)[:, None] + region(w)[None, :]).float()  # h, w
    windows = window_partition(labels.view(1, h, w, 1), window_size).squeeze(-1)  # nW, N
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` at the bottom/right to multiples of ``multiple``.

    Reflect padding as the original; where the image is too small to reflect that far, the rest
    is padded by edge replication (the original would raise).
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    if reflect_h or reflect_w:
        x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if reflect_h < pad_h or reflect_w < pad_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return x


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


def window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """The original formulation ``softmax(q k^T * scale + bias) v``, softmax in float32.

    ``q, k, v``: ``(B * nW, heads, N, d)``; ``bias``: ``(nW, heads, N, N)`` or ``(1, heads, N, N)``
    (windows of one image in a row, as :func:`window_partition` orders them). Returns ``(B * nW,
    heads, N, d)``.
    """
    bw, heads, n, _ = q.shape
    attn = ((q * scale) @ k.transpose(-2, -1)).view(-1, bias.shape[0], heads, n, n)
    attn = (attn.float() + bias.float()).softmax(-1).view(bw, heads, n, n)
    return attn.to(v.dtype) @ v


def window_attention_fused(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """:func:`window_attention` through ``scaled_dot_product_attention`` (same shapes and result).

    Windows and heads share one dimension, so the bias broadcasts over the batch as ``attn_mask``.
    SDPA's kernels (and its math fallback) run the softmax in float32 for half inputs.
    """
    bw, heads, n, d = q.shape
    nw = bias.shape[0]
    q, k, v = (t.reshape(bw // nw, nw * heads, n, d) for t in (q, k, v))
    mask = bias.reshape(1, nw * heads, n, n).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale).reshape(bw, heads, n, d)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    ``x``: ``(B * nW, N, C)`` with ``N = window_size**2``; ``mask``: ``(nW, N, N)`` additive or None.

    Both formulations give the original's result to float32 rounding; which one runs is a measured
    speed choice (SwinIR-light, x4). CPU inference uses ``scaled_dot_product_attention``: 1.4-1.7x
    faster on 128 px inputs (2 to 16 threads). With gradients, and on CUDA, the explicit product is
    faster: SDPA's CPU backward took 1.4-1.6x longer per training step, and on CUDA no fused kernel
    takes head dims that are not multiples of 8 (10 for SwinIR-light, 30 for classical SwinIR), so
    SDPA falls back to its math path (H100: 33 vs 26 ms for 256 px, fp32).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` bias added to the attention logits."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias().unsqueeze(0)
        if mask is not None:
            bias = bias + mask.unsqueeze(1)  # nW, heads, N, N
        fused = x.device.type == "cpu" and not x.requires_grad
        out = (window_attention_fused if fused else window_attention)(q, k, v, bias, self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """Two linear layers with GELU: ``(..., C) -> (..., C)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual: ``(B, H*W, C)``.

    Shifted blocks keep the original's ``attn_mask`` buffer for an ``img_size`` map: it is in
    published state dicts and spandrel reads ``img_size`` from its shape. The forward pass uses
    the mask the model computes for the actual (padded) size.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift: int,
        mlp_ratio: float,
        img_size: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(img_size, img_size, window_size, shift) if shift else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window_size), mask if self.shift else None)
        y = window_reverse(y, self.window_size, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + drop_path(y.reshape(b, h * w, c), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class BasicLayer(nn.Module):
    """A stack of blocks alternating plain and half-window-shifted windows: ``(B, H*W, C)``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        img_size: int,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio, img_size, dp
            )
            for i, dp in enumerate(drop_paths[:depth])
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size, mask)
        return x


def conv_block(dim: int, resi_connection: str) -> nn.Module:
    """The convolution closing a residual group: one 3x3, or the 3-conv bottleneck (dim / 4)."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )


class RSTB(nn.Module):
    """Residual Swin Transformer Block: blocks, then a conv on the image grid, plus the input."""

    def __init__(self, residual_group: BasicLayer, dim: int, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = residual_group
        self.conv = conv_block(dim, resi_connection)

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        y = self.residual_group(x, size, mask)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Feature map ``(B, C, H, W)`` -> layer-normed tokens ``(B, H*W, C)`` (patch size 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


# Receptive field (tiling overlap). Each block mixes pixels within one 8x8 window and shifted blocks
# move the window grid by half a window, so in theory information travels up to
# sum(depths) * (window_size - 1) pixels (168 for SwinIR-light): more than any useful tile overlap
# (spandrel marks SwinIR tiling "discouraged" for this reason). Trained SwinIR attends mostly
# within a few windows, and a tile differs from the whole image mainly near its edges, where the
# window grid, the reflect padding and the masked roll-over regions differ. We overlap by 4 windows
# (32 px at window 8): 2 windows of context on each side of the blending ramp. This is a judgement,
# not a measurement (no trained weights here to measure the effective reach with).
@register_model(
    "swinir_light",
    task="sr",
    config={
        "scale": 4,
        "embed_dim": 60,
        "depths": [6, 6, 6, 6],
        "num_heads": [6, 6, 6, 6],
        "window_size": 8,
        "mlp_ratio": 2.0,
        "upsampler": "pixelshuffledirect",
        "resi_connection": "1conv",
        "img_size": 64,
    },
    scale=4,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=32,
    summary="SwinIR-light: 60 dims, 4x6 Swin blocks, window 8 (930k parameters at x4)",
)
@register_model(
    "swinir_tiny",
    task="sr",
    config={
        "scale": 4,
        "embed_dim": 30,
        "depths": [2, 2],
        "num_heads": [3, 3],
        "window_size": 8,
        "mlp_ratio": 2.0,
        "upsampler": "pixelshuffledirect",
        "resi_connection": "1conv",
        "img_size": 32,
    },
    scale=4,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=32,
    summary="SwinIR with 2x2 Swin blocks of 30 dims, window 8 (71k parameters at x4): a CPU transformer",
)
class SwinIR(nn.Module):
    """SwinIR: residual groups of shifted-window transformer blocks (Liang et al. 2021).

    ``(N, C, H, W)`` in [0, 1] -> ``(N, C, H * scale, W * scale)``; any input size (padded
    internally by reflection to a multiple of ``window_size``, output cropped).

    - ``upsampler``: ``"pixelshuffledirect"`` (lightweight SR: one conv and a pixel shuffle),
      ``"pixelshuffle"`` (classical SR: conv + LeakyReLU to ``num_feat``, x2/x3 steps, conv), or
      ``""`` (restoration, ``scale`` 1: the network predicts a residual added to the input).
    - ``img_size``: the training patch size of the original; it only sets the size of the stored
      shifted-window masks (kept for state-dict compatibility), any size runs.
    - ``img_range``: the original multiplies the mean-shifted input by it (1.0 for the SR models,
      255.0 for the window-7 JPEG models, which spandrel assumes from ``window_size == 7``).
    - ``drop_path_rate``: stochastic depth for training (the original trains with 0.1), rising
      linearly over the blocks; no effect in eval mode.

    Key names and buffers are those of the original release, so its checkpoints load with
    ``load_state_dict`` (with the matching ``img_size``) and spandrel detects ours.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 3,
        embed_dim: int = 60,
        depths: list[int] | tuple[int, ...] = (6, 6, 6, 6),
        num_heads: list[int] | tuple[int, ...] = (6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upsampler: str = "pixelshuffledirect",
        resi_connection: str = "1conv",
        img_size: int = 64,
        img_range: float = 1.0,
        num_feat: int = 64,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        _validate(
            scale, in_channels, embed_dim, depths, num_heads, window_size, mlp_ratio, upsampler,
            resi_connection, img_size, img_range, num_feat, drop_path_rate,
        )  # fmt: skip
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.size_multiple = 1
        self.receptive_field = 4 * window_size
        self.window_size = window_size
        self.upsampler = upsampler
        self.img_range = img_range
        mean = (0.4488, 0.4371, 0.4040) if in_channels == 3 else (0.0,)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)

        # shallow features
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, 1, 1)
        # deep features
        self.patch_embed = PatchEmbed(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            start = sum(depths[:i])
            group = BasicLayer(embed_dim, depth, heads, window_size, mlp_ratio, img_size, rates[start:])
            self.layers.append(RSTB(group, embed_dim, resi_connection))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv_block(embed_dim, resi_connection)
        # reconstruction
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.upsample = PixelShuffleUpsample(scale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_channels, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, scale * scale * in_channels, 3, 1, 1), nn.PixelShuffle(scale)
            )
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_channels, 3, 1, 1)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features ``(B, C, H, W) -> (B, C, H, W)``; H and W multiples of ``window_size``."""
        b, c, h, w = x.shape
        ws = self.window_size
        mask = shifted_window_mask(h, w, ws, ws // 2, x.device)
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, (h, w), mask)
        return self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        elif self.upsampler == "pixelshuffledirect":
            x = self.upsample(feat)
        else:
            x = x + self.conv_last(feat)
        x = x / self.img_range + mean
        return x[..., : h * self.scale, : w * self.scale]


def _init_weights(module: nn.Module) -> None:
    """The original initialisation: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _validate(
    scale: int,
    in_channels: int,
    embed_dim: int,
    depths: list[int] | tuple[int, ...],
    num_heads: list[int] | tuple[int, ...],
    window_size: int,
    mlp_ratio: float,
    upsampler: str,
    resi_connection: str,
    img_size: int,
    img_range: float,
    num_feat: int,
    drop_path_rate: float,
) -> None:
    for name, value in (
        ("scale", scale), ("in_channels", in_channels), ("embed_dim", embed_dim), ("num_feat", num_feat)
    ):  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if upsampler == "" and scale != 1:
        raise ValueError(f"scale must be 1 with upsampler '' (restoration), got {scale!r}")
    if upsampler == "pixelshuffle" and scale not in (2, 3, 4, 8):
        raise ValueError(f"scale must be one of (2, 3, 4, 8) with upsampler 'pixelshuffle', got {scale!r}")
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
    if len(depths) == 0 or len(depths) != len(num_heads):
        raise ValueError(
            f"depths and num_heads must be non-empty and of equal length, got {depths!r} and {num_heads!r}"
        )
    if any(not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f"depths must be positive ints, got {depths!r}")
    for heads in num_heads:
        if not isinstance(heads, int) or heads < 1 or embed_dim % heads:
            raise ValueError(
                f"num_heads must be positive ints dividing embed_dim={embed_dim}, got {num_heads!r}"
            )
    if not isinstance(window_size, int) or window_size < 2:
        raise ValueError(f"window_size must be an int >= 2, got {window_size!r}")
    if not isinstance(img_size, int) or img_size <= window_size or img_size % window_size:
        raise ValueError(
            f"img_size must be a multiple of window_size={window_size} larger than it, got {img_size!r}"
        )
    if mlp_ratio <= 0:
        raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio!r}")
    if img_range <= 0:
        raise ValueError(f"img_range must be positive, got {img_range!r}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
