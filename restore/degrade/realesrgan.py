"""Real-ESRGAN's second-order degradation (Wang et al., ICCV-W 2021), batched on the device and seeded.

Follows ``RealESRGANModel.feed_data`` and ``RealESRGANDataset`` of xinntao/Real-ESRGAN with the defaults of
``train_realesrgan_x4plus.yml``. Twice: blur (random kernel), random resize (up/down/keep, area, bilinear or
bicubic), Gaussian or Poisson noise (colour or gray), JPEG; the second blur only with ``second_blur_prob``.
Then, in random order, [resize to H/scale x W/scale + sinc filter] and [JPEG]; finally the LQ is rounded
to 8 bits.

Differences from the original, all per sample where it drew per batch: the resize mode, the noise type
and the order of the final two steps are drawn per sample (the original draws them once per batch). The
resize scales are drawn per batch as in the original, because per-sample scales give per-sample sizes;
``per_sample_resize=True`` draws them per sample too and runs the batch one image at a time. The original
degrades the USM-sharpened ground truth (and trains against it); this module degrades what it is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from restore.degrade.blur import (
    KERNEL_TYPES,
    REAL_ESRGAN_KERNEL_SIZES,
    apply_kernels,
    pulse_kernels,
    random_kernels,
    random_sinc_kernels,
)
from restore.degrade.jpeg import jpeg
from restore.degrade.noise import add_gaussian_noise, add_poisson_noise
from restore.degrade.resize import RESIZE_MODES, resize
from restore.degrade.sampling import rand_bernoulli, rand_uniform

__all__ = ["RealESRGANConfig", "RealESRGANDegradation", "realesrgan_degrade"]

_DEFAULT_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


@dataclass
class RealESRGANConfig:
    """Parameters of the Real-ESRGAN degradation (defaults: ``train_realesrgan_x4plus.yml``).

    Noise ``noise_range*`` is on the 0-255 scale; probabilities are in [0, 1]; ``resize_prob*`` are the
    weights of (up, down, keep); a resize "up" draws U(1, range[1]), "down" U(range[0], 1).
    """

    # first degradation
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = _DEFAULT_KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # second degradation
    second_blur_prob: float = 0.8
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = _DEFAULT_KERNEL_PROB
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # final step
    final_sinc_prob: float = 0.8
    blur_kernel_size: int = 21
    kernel_sizes: tuple[int, ...] = REAL_ESRGAN_KERNEL_SIZES
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    per_sample_resize: bool = False
    round_output: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        for name in (
            "sinc_prob",
            "gaussian_noise_prob",
            "gray_noise_prob",
            "second_blur_prob",
            "sinc_prob2",
            "gaussian_noise_prob2",
            "gray_noise_prob2",
            "final_sinc_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in (
            "blur_sigma",
            "betag_range",
            "betap_range",
            "resize_range",
            "noise_range",
            "poisson_scale_range",
            "jpeg_range",
            "blur_sigma2",
            "betag_range2",
            "betap_range2",
            "resize_range2",
            "noise_range2",
            "poisson_scale_range2",
            "jpeg_range2",
        ):
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {value!r}")
        for name in ("resize_range", "resize_range2"):
            low, high = getattr(self, name)
            if not 0 < low <= 1 <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= 1 <= high, got {(low, high)!r}")
        for name in ("jpeg_range", "jpeg_range2"):
            if not 1 <= getattr(self, name)[0] <= getattr(self, name)[1] <= 100:
                raise ValueError(f"{name} must lie in [1, 100], got {getattr(self, name)!r}")
        for name in ("resize_prob", "resize_prob2"):
            value = getattr(self, name)
            if len(value) != 3 or min(value) < 0 or sum(value) <= 0:
                raise ValueError(f"{name} must be 3 non-negative weights (up, down, keep), got {value!r}")
        bad_modes = [m for m in self.resize_modes if m not in RESIZE_MODES]
        if not self.resize_modes or bad_modes:
            raise ValueError(
                f"resize_modes must be a non-empty subset of {RESIZE_MODES}, got {self.resize_modes!r}"
            )
        if self.blur_kernel_size % 2 == 0 or max(self.kernel_sizes) > self.blur_kernel_size:
            raise ValueError(
                f"blur_kernel_size must be odd and >= every kernel_sizes entry, got {self.blur_kernel_size} "
                f"and {self.kernel_sizes}"
            )
        # kernel lists and probabilities are validated by random_kernels below
        gen = torch.Generator().manual_seed(0)
        for suffix in ("", "2"):
            random_kernels(
                1,
                getattr(self, "kernel_list" + suffix),
                getattr(self, "kernel_prob" + suffix),
                kernel_sizes=self.kernel_sizes,
                size=self.blur_kernel_size,
                generator=gen,
            )

    def to_dict(self) -> dict:
        """Plain dict (tuples as lists), e.g. for YAML configs."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _choice(n: int, weights: Sequence[float], generator: torch.Generator | None, device: torch.device):
    probs = torch.tensor([float(w) for w in weights], device=device)
    return torch.multinomial(probs.expand(n, -1).contiguous(), 1, generator=generator).flatten()


def _random_scale(
    n: int,
    resize_prob: Sequence[float],
    resize_range: Sequence[float],
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Per-sample resize factor: up U(1, high), down U(low, 1) or keep 1, with ``resize_prob``."""
    kind = _choice(n, resize_prob, generator, device)
    up = rand_uniform(n, 1.0, resize_range[1], generator, device)
    down = rand_uniform(n, resize_range[0], 1.0, generator, device)
    return torch.where(kind == 0, up, torch.where(kind == 1, down, torch.ones_like(up)))


def _by_group(
    x: torch.Tensor, groups: list[int], fn: Callable[[torch.Tensor, list[int], int], torch.Tensor]
) -> torch.Tensor:
    """Apply ``fn(x[idx], idx, group)`` to each group of samples and put the results back in order."""
    out: torch.Tensor | None = None
    for g in sorted(set(groups)):
        idx = [i for i, v in enumerate(groups) if v == g]
        index = torch.tensor(idx, device=x.device)
        part = fn(x if len(idx) == len(groups) else x[index], idx, g)
        if len(idx) == len(groups):
            return part
        if out is None:
            out = part.new_empty((len(groups), *part.shape[1:]))
        out[index] = part
    assert out is not None
    return out


class RealESRGANDegradation(nn.Module):
    """Real-ESRGAN second-order degradation: HR (N, 3, H, W) -> LQ (N, 3, H // scale, W // scale)."""

    def __init__(self, scale: int = 4, config: RealESRGANConfig | dict | None = None) -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int (4 or 2 as published), got {scale!r}")
        if isinstance(config, dict):
            unknown = set(config) - {f.name for f in fields(RealESRGANConfig)}
            if unknown:
                from losses.registry import did_you_mean

                key = sorted(unknown)[0]
                names = [f.name for f in fields(RealESRGANConfig)]
                raise TypeError(f"RealESRGANConfig has no field {key!r}.{did_you_mean(key, names)}")
            config = RealESRGANConfig(**config)
        self.scale = scale
        self.config = config if config is not None else RealESRGANConfig()

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw every per-sample parameter on the generator's device; return them on ``device``.

        Keys: kernel1, kernel2, sinc (N, k, k); scale1/2, mode1/2/3, gaussian1/2, sigma1/2, poisson1/2,
        gray1/2, quality1/2, jpeg_first (N,).
        """
        cfg = self.config
        draw = generator.device if generator is not None else torch.device(device or "cpu")
        target = torch.device(device) if device is not None else draw
        size = cfg.blur_kernel_size

        def kernels(suffix: str) -> torch.Tensor:
            return random_kernels(
                n,
                getattr(cfg, "kernel_list" + suffix),
                getattr(cfg, "kernel_prob" + suffix),
                getattr(cfg, "blur_sigma" + suffix),
                getattr(cfg, "betag_range" + suffix),
                getattr(cfg, "betap_range" + suffix),
                getattr(cfg, "sinc_prob" + suffix),
                cfg.kernel_sizes,
                size,
                generator,
                target,
            )

        p: dict[str, torch.Tensor] = {"kernel1": kernels("")}
        kernel2 = kernels("2")
        blur2 = rand_bernoulli(n, cfg.second_blur_prob, generator, draw).to(target)
        p["kernel2"] = torch.where(blur2.view(n, 1, 1), kernel2, pulse_kernels(n, size, target))
        p["sinc"] = random_sinc_kernels(n, cfg.final_sinc_prob, cfg.kernel_sizes, size, generator, target)
        m = n if cfg.per_sample_resize else 1
        for stage, suffix in ((1, ""), (2, "2")):
            prob, limits = getattr(cfg, "resize_prob" + suffix), getattr(cfg, "resize_range" + suffix)
            p[f"scale{stage}"] = _random_scale(m, prob, limits, generator, draw).expand(n)
            p[f"mode{stage}"] = torch.randint(len(cfg.resize_modes), (n,), generator=generator, device=draw)
            p[f"gaussian{stage}"] = rand_bernoulli(
                n, getattr(cfg, "gaussian_noise_prob" + suffix), generator, draw
            )
            p[f"sigma{stage}"] = rand_uniform(n, *getattr(cfg, "noise_range" + suffix), generator, draw)
            p[f"poisson{stage}"] = rand_uniform(
                n, *getattr(cfg, "poisson_scale_range" + suffix), generator, draw
            )
            p[f"gray{stage}"] = rand_bernoulli(n, getattr(cfg, "gray_noise_prob" + suffix), generator, draw)
            p[f"quality{stage}"] = rand_uniform(n, *getattr(cfg, "jpeg_range" + suffix), generator, draw)
        p["mode3"] = torch.randint(len(cfg.resize_modes), (n,), generator=generator, device=draw)
        p["jpeg_first"] = rand_bernoulli(n, 0.5, generator, draw)
        return {k: v.to(target) for k, v in p.items()}

    def forward(self, hr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H // scale, W // scale) in [0, 1] (8-bit levels by default)."""
        if hr.ndim != 4 or hr.shape[1] != 3:
            raise ValueError(f"hr must be (N, 3, H, W) RGB, got shape {tuple(hr.shape)}")
        if min(hr.shape[-2:]) < self.scale:
            raise ValueError(f"hr must be at least scale={self.scale} pixels a side, got {tuple(hr.shape)}")
        params = self.sample(hr.shape[0], generator, hr.device)
        return self.apply(hr, params, generator)

    def apply(
        self, hr: torch.Tensor, params: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Degrade ``hr`` with parameters from :meth:`sample` (noise fields are drawn from ``generator``)."""
        n = hr.shape[0]
        if self.config.per_sample_resize and n > 1:
            pairs = set(zip(params["scale1"].tolist(), params["scale2"].tolist(), strict=True))
            if len(pairs) > 1:  # per-sample sizes: one image at a time
                one = [{k: v[i : i + 1] for k, v in params.items()} for i in range(n)]
                return torch.cat([self._degrade(hr[i : i + 1], one[i], generator) for i in range(n)])
        return self._degrade(hr, params, generator)

    def _resize(self, x: torch.Tensor, size: tuple[int, int], modes: list[int]) -> torch.Tensor:
        size = (max(1, size[0]), max(1, size[1]))
        names = self.config.resize_modes
        return _by_group(x, [int(m) for m in modes], lambda part, _idx, m: resize(part, size, names[m]))

    def _degrade(
        self, hr: torch.Tensor, p: dict[str, torch.Tensor], generator: torch.Generator | None
    ) -> torch.Tensor:
        n, _, height, width = hr.shape
        keys = [k for k, v in p.items() if v.ndim == 1]
        values = torch.stack([p[k].double() for k in keys]).cpu().tolist()  # one transfer for every choice
        host = dict(zip(keys, values, strict=True))

        def noise(x: torch.Tensor, stage: int) -> torch.Tensor:
            def add(part: torch.Tensor, idx: list[int], gaussian: int) -> torch.Tensor:
                def pick(key: str) -> torch.Tensor:
                    return torch.tensor([host[f"{key}{stage}"][i] for i in idx], device=x.device)

                if gaussian:
                    return add_gaussian_noise(part, pick("sigma"), pick("gray"), True, generator)
                return add_poisson_noise(part, pick("poisson"), pick("gray"), True, generator)

            return _by_group(x, [int(v) for v in host[f"gaussian{stage}"]], add)

        # first degradation: blur, resize, noise, JPEG
        out = apply_kernels(hr, p["kernel1"])
        s1 = host["scale1"][0]
        out = self._resize(out, (math.floor(height * s1), math.floor(width * s1)), host["mode1"])
        out = jpeg(noise(out, 1), p["quality1"].to(out.device))
        # second degradation: blur (a pulse kernel where skipped), resize, noise
        out = apply_kernels(out, p["kernel2"])
        s2 = host["scale2"][0]
        size2 = (int(height / self.scale * s2), int(width / self.scale * s2))
        out = noise(self._resize(out, size2, host["mode2"]), 2)

        # final: [resize back + sinc] and [JPEG], in an order drawn per sample
        final_size = (height // self.scale, width // self.scale)

        def final(part: torch.Tensor, idx: list[int], jpeg_first: int) -> torch.Tensor:
            index = torch.tensor(idx, device=p["sinc"].device)
            sinc, quality = p["sinc"][index], p["quality2"][index]
            modes = [host["mode3"][i] for i in idx]

            def back(x: torch.Tensor) -> torch.Tensor:
                return apply_kernels(self._resize(x, final_size, modes), sinc)

            if jpeg_first:
                return back(jpeg(part, quality.to(part.device)))
            return jpeg(back(part), quality.to(part.device))

        out = _by_group(out, [int(v) for v in host["jpeg_first"]], final).clamp(0, 1)
        if self.config.round_output:
            out = torch.round(out * 255) / 255
        return out


def realesrgan_degrade(
    hr: torch.Tensor,
    scale: int = 4,
    config: RealESRGANConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Functional form of :class:`RealESRGANDegradation`: (N, 3, H, W) -> (N, 3, H // scale, W // scale)."""
    return RealESRGANDegradation(scale, config)(hr, generator)
