"""LaMa: large-mask inpainting with Fast Fourier Convolutions (Suvorov et al. 2022).

The generator is big-lama's ``FFCResNetGenerator``: a 7x7 FFC stem, stride-2 FFC downsamplings, a
bottleneck of FFC residual blocks whose channels are split into a local part (3x3 convolutions)
and a global part (3/4 of the channels, ``ratio_gin = ratio_gout = 0.75``) that is convolved in
the Fourier domain, then transposed-convolution upsampling and a 7x7 output convolution with a
sigmoid. State-dict keys are those of the published big-lama generator under ``model.``
(``model.model.1.ffc.convl2l.weight``, ``model.model.5.conv1.ffc.convg2g.fu.conv_layer.weight``...),
so spandrel detects our state dicts as "LaMa" and published big-lama weights load unchanged.

Mixed precision: the FFTs run in float32 with autocast off (CUDA fp16 FFT needs power-of-two
sizes, bf16 FFT does not exist, and spectral coefficients grow with sqrt(H*W)); the spectral 1x1
convolution, its batch norm and the inverse FFT run with autocast off too, and the result is cast
back to the input dtype. Big-lama's local Fourier unit (``enable_lfu``) is off in every published
configuration and is not implemented.
"""

from __future__ import annotations

import torch
from torch import nn

from .pushpull import push_pull_fill
from .registry import register_model

PRIORS = (None, "pushpull")

FeaturePair = tuple[torch.Tensor, torch.Tensor | None]


def rfft2_float32(x: torch.Tensor, norm: str = "ortho") -> torch.Tensor:
    """Real 2-D FFT over the last two dims, in float32 with autocast off.

    (N,C,H,W) any float dtype -> complex64 (N,C,H,W//2+1).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.fft.rfftn(x.float(), dim=(-2, -1), norm=norm)


def irfft2_float32(z: torch.Tensor, size: tuple[int, int], norm: str = "ortho") -> torch.Tensor:
    """Inverse of :func:`rfft2_float32`: complex (N,C,H,W//2+1) -> float32 (N,C,H,W) with ``size=(H,W)``."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        return torch.fft.irfftn(z.to(torch.complex64), s=size, dim=(-2, -1), norm=norm)


class FourierUnit(nn.Module):
    """1x1 convolution + BN + ReLU on the real and imaginary parts of a feature map's 2-D FFT.

    (N,C,H,W) -> (N,C,H,W). The spectrum's channels are interleaved as (re0, im0, re1, im1, ...)
    as in the original, so the weights of ``conv_layer`` (2C -> 2C, no bias) and ``bn`` load.
    Everything between the forward and inverse FFT runs with autocast off in the weights' dtype.
    """

    def __init__(self, in_channels: int, out_channels: int, fft_norm: str = "ortho") -> None:
        super().__init__()
        self.fft_norm = fft_norm
        self.conv_layer = nn.Conv2d(2 * in_channels, 2 * out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        spectrum = rfft2_float32(x, self.fft_norm)
        parts = torch.stack((spectrum.real, spectrum.imag), dim=2).flatten(1, 2)  # (N,2C,H,W//2+1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            parts = self.relu(self.bn(self.conv_layer(parts.to(self.conv_layer.weight.dtype))))
        parts = parts.float().unflatten(1, (-1, 2))  # (N,C,2,H,W//2+1)
        spectrum = torch.complex(parts[:, :, 0], parts[:, :, 1])
        return irfft2_float32(spectrum, (height, width), self.fft_norm).to(x.dtype)


class SpectralTransform(nn.Module):
    """The global-to-global path of an FFC: 1x1 conv to C/2, a Fourier unit with a skip, 1x1 conv to C.

    (N,Cin,H,W) -> (N,Cout,H,W): ``conv2(y + fu(y))`` with ``y = conv1(x)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.fu = FourierUnit(hidden, hidden)
        self.conv2 = nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return self.conv2(y + self.fu(y))


def split_channels(channels: int, ratio: float) -> tuple[int, int]:
    """(local, global) channel counts of an FFC side: ``global = int(channels * ratio)``."""
    global_channels = int(channels * ratio)
    return channels - global_channels, global_channels


def _sum(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


class FFC(nn.Module):
    """Fast Fourier Convolution: local and global channel groups with four cross paths.

    Input ``(x_l, x_g)`` with ``x_g`` None when ``ratio_gin == 0``; output ``(y_l, y_g)`` with ``y_g``
    None when ``ratio_gout == 0``. ``y_l = convl2l(x_l) + convg2l(x_g)`` and
    ``y_g = convl2g(x_l) + convg2g(x_g)``, where ``convg2g`` is a :class:`SpectralTransform` (stride 1
    only) and the others are k x k convolutions with reflect padding. Paths with no channels on
    either side are absent (no parameters), as in the original.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= ratio_gin < 1 or not 0 <= ratio_gout < 1:
            raise ValueError(f"ratio_gin and ratio_gout must be in [0, 1), got {ratio_gin!r}, {ratio_gout!r}")
        in_l, in_g = split_channels(in_channels, ratio_gin)
        out_l, out_g = split_channels(out_channels, ratio_gout)
        if in_g and stride != 1:
            raise ValueError(f"a global input path needs stride 1, got stride={stride!r}")

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            if cin == 0 or cout == 0:
                return None
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False, padding_mode="reflect")

        self.convl2l = conv(in_l, out_l)
        self.convl2g = conv(in_l, out_g)
        self.convg2l = conv(in_g, out_l)
        self.convg2g = SpectralTransform(in_g, out_g) if in_g and out_g else None

    def forward(self, x: FeaturePair) -> FeaturePair:
        x_l, x_g = x
        y_l = _sum(
            self.convl2l(x_l) if self.convl2l is not None else None,
            self.convg2l(x_g) if self.convg2l is not None and x_g is not None else None,
        )
        y_g = _sum(
            self.convl2g(x_l) if self.convl2g is not None else None,
            self.convg2g(x_g) if self.convg2g is not None and x_g is not None else None,
        )
        if y_l is None:
            raise ValueError("FFC produced no local output; ratio_gout must leave local channels")
        return y_l, y_g


class FFCBnAct(nn.Module):
    """FFC followed by batch norm and ReLU on each of its local and global outputs.

    ``(x_l, x_g)`` or a plain tensor (all local) -> ``(y_l, y_g)``. Keys ``ffc``, ``bn_l``, ``bn_g``
    (original name ``FFC_BN_ACT``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding)
        out_l, out_g = split_channels(out_channels, ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_l)
        self.bn_g = nn.BatchNorm2d(out_g) if out_g else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor | FeaturePair) -> FeaturePair:
        y_l, y_g = self.ffc(x if isinstance(x, tuple) else (x, None))
        y_l = self.act(self.bn_l(y_l))
        if y_g is not None and self.bn_g is not None:
            y_g = self.act(self.bn_g(y_g))
        return y_l, y_g


class FFCResnetBlock(nn.Module):
    """Residual block of two 3x3 FFC-BN-ReLU layers on (local, global) features.

    ``(x_l, x_g)`` -> ``(x_l + f_l, x_g + f_g)``, channel split kept; keys ``conv1``, ``conv2``.
    """

    def __init__(self, channels: int, ratio: float = 0.75) -> None:
        super().__init__()
        self.conv1 = FFCBnAct(channels, channels, 3, ratio, ratio, padding=1)
        self.conv2 = FFCBnAct(channels, channels, 3, ratio, ratio, padding=1)

    def forward(self, x: FeaturePair) -> FeaturePair:
        x_l, x_g = x
        y_l, y_g = self.conv2(self.conv1(x))
        return x_l + y_l, _sum(x_g, y_g)


class ConcatTuple(nn.Module):
    """(x_l, x_g) -> cat([x_l, x_g], dim=1): local channels first, as the original."""

    def forward(self, x: FeaturePair) -> torch.Tensor:
        x_l, x_g = x
        return x_l if x_g is None else torch.cat([x_l, x_g], dim=1)


class FFCResNetGenerator(nn.Module):
    """Big-lama's generator: FFC stem, downsampling, FFC resnet blocks, transposed-conv upsampling.

    (N,in_nc,H,W) -> (N,out_nc,H,W) in (0,1) (sigmoid). H and W must be multiples of
    ``2**n_downsampling``. All layers sit in one ``nn.Sequential`` named ``model`` so the indices
    (``model.1`` stem, ``model.2..`` downsamplings, then blocks, concat, upsampling triples, output
    conv) are those of the original.
    """

    def __init__(
        self,
        input_nc: int = 4,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 18,
        max_features: int = 1024,
        ratio: float = 0.75,
    ) -> None:
        super().__init__()
        for name, value in (("ngf", ngf), ("n_downsampling", n_downsampling), ("max_features", max_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be a non-negative int, got {n_blocks!r}")

        def feats(mult: float) -> int:
            return min(max_features, int(ngf * mult))

        layers: list[nn.Module] = [nn.ReflectionPad2d(3), FFCBnAct(input_nc, ngf, 7, 0.0, 0.0)]
        for i in range(n_downsampling):
            ratio_gout = ratio if i == n_downsampling - 1 else 0.0
            layers.append(FFCBnAct(feats(2**i), feats(2 ** (i + 1)), 3, 0.0, ratio_gout, stride=2, padding=1))
        bottleneck = feats(2**n_downsampling)
        layers += [FFCResnetBlock(bottleneck, ratio) for _ in range(n_blocks)]
        layers.append(ConcatTuple())
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            layers += [
                nn.ConvTranspose2d(feats(mult), feats(mult / 2), 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(feats(mult / 2)),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_model(
    "lama_pushpull_small",
    task="inpaint",
    config={"ngf": 32, "n_downsampling": 3, "n_blocks": 4, "prior": "pushpull"},
    size_multiple=8,
    receptive_field=128,
    supports_fp16=False,
    inputs=("image", "mask"),
    summary="lama_small refining the push-pull fill (zero-initialised residual head: untrained = push-pull)",
)
@register_model(
    "lama",
    task="inpaint",
    config={"ngf": 64, "n_downsampling": 3, "n_blocks": 18},
    size_multiple=8,
    receptive_field=128,
    supports_fp16=False,
    inputs=("image", "mask"),
    summary="big-lama FFC inpainting generator (ngf 64, 18 FFC blocks; 51M parameters)",
)
@register_model(
    "lama_small",
    task="inpaint",
    config={"ngf": 32, "n_downsampling": 3, "n_blocks": 4},
    size_multiple=8,
    receptive_field=128,
    supports_fp16=False,
    inputs=("image", "mask"),
    summary="LaMa design with ngf 32 and 4 FFC blocks (3.4M parameters): trainable on a CPU",
)
class LaMa(nn.Module):
    """LaMa inpainting network: FFC ResNet generator on the masked image and the mask.

    ``forward(image (N,C,H,W) in [0,1], mask (N,1,H,W), 1 = hole) -> (N,C,H,W) in [0,1]``. The
    generator sees ``cat([image * (1 - mask), mask])``; with ``composite=True`` (the default, and what
    spandrel's LaMa returns) the result is ``mask * generated + (1 - mask) * image``, so known pixels
    come back unchanged; ``composite=False`` returns the raw generator output.

    H and W must be multiples of ``2**n_downsampling`` (8 for big-lama; no internal padding) and at
    least twice that (reflect padding at the bottleneck). ``receptive_field`` is 128: the global
    Fourier branch sees the whole image and the local convolutions alone reach ~300 px, so no finite
    overlap is exact; 128 px is half of the 256-px crops big-lama was trained on, so a tiled pixel
    keeps at least the context it had in training. Inpaint whole images when they fit. fp16 is not
    declared: published big-lama overflows float16 on some images (reported black outputs); bf16 is.

    ``prior="pushpull"`` makes the network a refiner of a classical fill: the generator sees
    ``cat([fill, mask])`` where ``fill`` is :func:`restore.models.pushpull.push_pull_fill` of the
    image, and adds its output to ``fill`` instead of producing the image through a sigmoid. The
    last convolution starts at zero, so the untrained network IS the push-pull filler and training
    only has to learn what the classical fill misses (texture, edges carried into the hole).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 18,
        max_features: int = 1024,
        ratio: float = 0.75,
        prior: str | None = None,
    ) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        self.prior = prior
        self.scale = 1
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.model = FFCResNetGenerator(
            in_channels + 1, out_channels, ngf, n_downsampling, n_blocks, max_features, ratio
        )
        self.size_multiple = 2**n_downsampling
        if prior is not None:  # residual head: no sigmoid, last convolution zero (untrained = the prior)
            self.model.model[-1] = nn.Identity()
            nn.init.zeros_(self.model.model[-2].weight)
            nn.init.zeros_(self.model.model[-2].bias)

    def _check(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"image must be (N,{self.in_channels},H,W), got shape {tuple(image.shape)}")
        n, _, h, w = image.shape
        if mask.shape != (n, 1, h, w):
            raise ValueError(f"mask must be (N,1,H,W) = {(n, 1, h, w)}, got shape {tuple(mask.shape)}")
        m = self.size_multiple
        if h % m or w % m or h < 2 * m or w < 2 * m:
            raise ValueError(
                f"image height and width must be multiples of {m} and at least {2 * m}, got {h}x{w}; "
                "pad first"
            )

    def forward(self, image: torch.Tensor, mask: torch.Tensor, composite: bool = True) -> torch.Tensor:
        self._check(image, mask)
        mask = mask.to(image.dtype)
        if self.prior is None:
            generated = self.model(torch.cat([image * (1 - mask), mask], dim=1))
        else:
            with torch.autocast(device_type=image.device.type, enabled=False):
                fill = push_pull_fill(image.float(), mask.float())
            generated = fill + self.model(torch.cat([fill, mask.float()], dim=1).to(image.dtype)).float()
            generated = generated.to(image.dtype)
        if not composite:
            return generated
        return mask * generated + (1 - mask) * image
