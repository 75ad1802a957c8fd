"""Blur kernels as batched (N, k, k) tensors and a per-sample blur with one grouped convolution.

Kernels follow Real-ESRGAN (BasicSR's ``degradations.py``): isotropic and anisotropic Gaussians,
generalized Gaussians ``exp(-0.5 * q**beta)``, plateau kernels ``1 / (1 + q**beta)`` with
``q = [x, y] Sigma^-1 [x, y]^T`` and ``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``, and the
circular low-pass (2-D sinc) ``cutoff * J1(cutoff * r) / (2 pi r)``. Motion blur is an antialiased
line segment. Every kernel sums to one. A kernel of size ``k`` smaller than the tensor's ``size`` is
zero-padded to the centre, as Real-ESRGAN pads its 7..21 kernels to 21.

Coordinates: ``x`` grows to the right (columns), ``y`` downwards (rows); ``theta`` rotates ``sigma_x``'s
axis from ``x`` towards ``y`` (radians); a motion ``angle`` is in degrees, counter-clockwise as displayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from restore.degrade.sampling import per_sample, rand_bernoulli, rand_uniform

__all__ = [
    "KERNEL_TYPES",
    "RandomBlur",
    "apply_kernels",
    "gaussian_kernels",
    "generalized_gaussian_kernels",
    "motion_kernels",
    "plateau_kernels",
    "pulse_kernels",
    "random_kernels",
    "random_sinc_kernels",
    "sinc_kernels",
]

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
REAL_ESRGAN_KERNEL_SIZES = tuple(range(7, 22, 2))


def _check_size(kernel_size: int, name: str = "kernel_size") -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int, got {kernel_size!r}")


def _grid(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, size, size) x (columns) and y (rows) centred at zero."""
    ax = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x[None], y[None]


def _support_mask(
    kernel_size: int | torch.Tensor, size: int, n: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(N, size, size) 1 inside each sample's centred kernel_size x kernel_size square, else 0."""
    radius = (per_sample(kernel_size, n, device, "kernel_size").to(dtype) - 1) / 2
    x, y = _grid(size, device, dtype)
    r = radius.view(n, 1, 1)
    return ((x.abs() <= r) & (y.abs() <= r)).to(dtype)


def _finish(kernels: torch.Tensor, kernel_size: int | torch.Tensor | None, size: int) -> torch.Tensor:
    """Zero outside each sample's support and normalise every kernel to sum to one."""
    if kernel_size is not None:
        kernels = kernels * _support_mask(kernel_size, size, kernels.shape[0], kernels.device, kernels.dtype)
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def _quadratic_form(
    sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, size: int
) -> torch.Tensor:
    """(N, size, size) q = [x, y] Sigma^-1 [x, y]^T of the rotated covariance."""
    n = sigma_x.shape[0]
    x, y = _grid(size, sigma_x.device, sigma_x.dtype)
    cos, sin = torch.cos(theta).view(n, 1, 1), torch.sin(theta).view(n, 1, 1)
    inv_x2, inv_y2 = sigma_x.view(n, 1, 1) ** -2, sigma_y.view(n, 1, 1) ** -2
    a = cos**2 * inv_x2 + sin**2 * inv_y2
    b = cos * sin * (inv_x2 - inv_y2)
    c = sin**2 * inv_x2 + cos**2 * inv_y2
    return a * x**2 + 2 * b * x * y + c * y**2


def _shape_params(
    sigma_x: float | torch.Tensor,
    sigma_y: float | torch.Tensor | None,
    theta: float | torch.Tensor | None,
    n: int | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if n is None:
        n = max(torch.as_tensor(v).numel() for v in (sigma_x, sigma_y, theta) if v is not None)
    if device is None:
        tensors = [v for v in (sigma_x, sigma_y, theta) if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else torch.device("cpu")
    for name, value in (("sigma_x", sigma_x), ("sigma_y", sigma_y)):
        if isinstance(value, (int, float)) and value <= 0:  # tensors are not checked: no device sync
            raise ValueError(f"{name} must be positive, got {value}")
    dev = torch.device(device)
    sx = per_sample(sigma_x, n, dev, "sigma_x").to(dtype)
    sy = sx if sigma_y is None else per_sample(sigma_y, n, dev, "sigma_y").to(dtype)
    th = torch.zeros_like(sx) if theta is None else per_sample(theta, n, dev, "theta").to(dtype)
    return sx, sy, th


def gaussian_kernels(
    sigma_x: float | torch.Tensor,
    sigma_y: float | torch.Tensor | None = None,
    theta: float | torch.Tensor | None = None,
    size: int = 21,
    kernel_size: int | torch.Tensor | None = None,
    n: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Gaussian kernels ``exp(-q / 2)``, normalised: isotropic when ``sigma_y`` is None.

    Args:
        sigma_x, sigma_y: standard deviations in pixels along the rotated axes, numbers or (N,).
        theta: rotation in radians, number or (N,); ignored (0) when None.
        size: side of the returned tensor (odd).
        kernel_size: per-sample support (odd, <= size), int or (N,); None: the whole ``size``.
        n, device, dtype: batch size (default: from the tensors), device and dtype of the result.

    Returns:
        (N, size, size) kernels, each summing to one.
    """
    _check_size(size, "size")
    sx, sy, th = _shape_params(sigma_x, sigma_y, theta, n, device, dtype)
    return _finish(torch.exp(-0.5 * _quadratic_form(sx, sy, th, size)), kernel_size, size)


def generalized_gaussian_kernels(
    sigma_x: float | torch.Tensor,
    sigma_y: float | torch.Tensor | None,
    theta: float | torch.Tensor | None,
    beta: float | torch.Tensor,
    size: int = 21,
    kernel_size: int | torch.Tensor | None = None,
    n: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Generalized Gaussian kernels ``exp(-0.5 * q**beta)`` (beta = 1: Gaussian), (N, size, size)."""
    _check_size(size, "size")
    sx, sy, th = _shape_params(sigma_x, sigma_y, theta, n, device, dtype)
    b = per_sample(beta, sx.shape[0], sx.device, "beta").to(dtype).view(-1, 1, 1)
    return _finish(torch.exp(-0.5 * _quadratic_form(sx, sy, th, size) ** b), kernel_size, size)


def plateau_kernels(
    sigma_x: float | torch.Tensor,
    sigma_y: float | torch.Tensor | None,
    theta: float | torch.Tensor | None,
    beta: float | torch.Tensor,
    size: int = 21,
    kernel_size: int | torch.Tensor | None = None,
    n: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Plateau-shaped kernels ``1 / (1 + q**beta)``, (N, size, size)."""
    _check_size(size, "size")
    sx, sy, th = _shape_params(sigma_x, sigma_y, theta, n, device, dtype)
    b = per_sample(beta, sx.shape[0], sx.device, "beta").to(dtype).view(-1, 1, 1)
    return _finish(1.0 / (_quadratic_form(sx, sy, th, size) ** b + 1.0), kernel_size, size)


def sinc_kernels(
    cutoff: float | torch.Tensor,
    size: int = 21,
    kernel_size: int | torch.Tensor | None = None,
    n: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernels of Real-ESRGAN's ``circular_lowpass_kernel``.

    Args:
        cutoff: cutoff frequency in radians per pixel (pi is Nyquist), number or (N,).
        size, kernel_size, n, device, dtype: as :func:`gaussian_kernels`.

    Returns:
        (N, size, size): ``cutoff * J1(cutoff * r) / (2 pi r)`` (``cutoff**2 / (4 pi)`` at the centre),
        normalised over each sample's support.
    """
    _check_size(size, "size")
    if n is None:
        n = torch.as_tensor(cutoff).numel()
    if device is None:
        device = cutoff.device if isinstance(cutoff, torch.Tensor) else "cpu"
    c = per_sample(cutoff, n, torch.device(device), "cutoff").to(dtype).view(n, 1, 1)
    x, y = _grid(size, c.device, dtype)
    r = torch.sqrt(x**2 + y**2)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    ring = c * torch.special.bessel_j1(c * safe_r) / (2 * math.pi * safe_r)
    kernels = torch.where(r > 0, ring, c**2 / (4 * math.pi))
    return _finish(kernels, kernel_size, size)


def motion_kernels(
    length: float | torch.Tensor,
    angle: float | torch.Tensor,
    size: int = 21,
    n: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Linear motion blur: an antialiased segment through the centre, (N, size, size).

    A pixel's weight is ``max(0, 1 - d)`` with ``d`` its distance to the segment of length
    ``length - 1`` centred at the origin, so a horizontal ``length=5`` kernel has five equal taps.
    Point symmetric: the blur is centred (no shift).

    Args:
        length: streak length in pixels (>= 1, at most ``size``), number or (N,).
        angle: direction in degrees, counter-clockwise as displayed (0: horizontal), number or (N,).
    """
    _check_size(size, "size")
    if n is None:
        n = max(torch.as_tensor(length).numel(), torch.as_tensor(angle).numel())
    if device is None:
        tensors = [v for v in (length, angle) if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else "cpu"
    dev = torch.device(device)
    if isinstance(length, (int, float)) and not 1 <= length <= size:
        raise ValueError(f"length must be in [1, size={size}], got {length}")
    length = per_sample(length, n, dev, "length").to(dtype).clamp(1, size)
    rad = per_sample(angle, n, dev, "angle").to(dtype) * (math.pi / 180)
    dx, dy = torch.cos(rad).view(n, 1, 1), -torch.sin(rad).view(n, 1, 1)  # rows grow downwards
    half = ((length - 1) / 2).view(n, 1, 1)
    x, y = _grid(size, dev, dtype)
    t = (x * dx + y * dy).clamp(-half, half)
    distance = torch.sqrt((x - t * dx) ** 2 + (y - t * dy) ** 2)
    return _finish((1 - distance).clamp(min=0), None, size)


def pulse_kernels(
    n: int, size: int = 21, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(N, size, size) identity kernels (a one at the centre): blurring with them changes nothing."""
    _check_size(size, "size")
    kernels = torch.zeros(n, size, size, device=device, dtype=dtype)
    kernels[:, size // 2, size // 2] = 1
    return kernels


def _random_beta(
    n: int, beta_range: Sequence[float], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """BasicSR's beta draw: with probability 1/2 U(beta_low, 1), else U(1, beta_high)."""
    low, high = float(beta_range[0]), float(beta_range[1])
    below = rand_uniform(n, min(low, 1.0), 1.0, generator, device)
    above = rand_uniform(n, 1.0, max(high, 1.0), generator, device)
    return torch.where(rand_bernoulli(n, 0.5, generator, device), below, above)


def _random_sizes(
    n: int, sizes: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    choices = torch.tensor(list(sizes), device=device)
    index = torch.randint(len(sizes), (n,), generator=generator, device=device)
    return choices[index]


def _random_sinc_cutoff(
    n: int, kernel_size: torch.Tensor, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Real-ESRGAN's cutoff: U(pi/3, pi) for kernels smaller than 13, else U(pi/5, pi)."""
    small = rand_uniform(n, math.pi / 3, math.pi, generator, device)
    large = rand_uniform(n, math.pi / 5, math.pi, generator, device)
    return torch.where(kernel_size < 13, small, large)


def random_kernels(
    n: int,
    kernel_list: Sequence[str] = KERNEL_TYPES,
    kernel_prob: Sequence[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sigma_range: Sequence[float] = (0.2, 3.0),
    betag_range: Sequence[float] = (0.5, 4.0),
    betap_range: Sequence[float] = (1.0, 2.0),
    sinc_prob: float = 0.1,
    kernel_sizes: Sequence[int] = REAL_ESRGAN_KERNEL_SIZES,
    size: int = 21,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Real-ESRGAN's random blur kernels (``random_mixed_kernels`` + sinc), one per sample.

    Per sample: a kernel size from ``kernel_sizes``; with ``sinc_prob`` a circular low-pass with cutoff
    U(pi/3, pi) (size < 13) or U(pi/5, pi); otherwise a type from ``kernel_list`` with ``kernel_prob``,
    ``sigma_x, sigma_y ~ U(sigma_range)`` (``sigma_y = sigma_x``, ``theta = 0`` for the isotropic types),
    ``theta ~ U(-pi, pi)``, beta from ``betag_range``/``betap_range`` (half the time below 1, half above).

    Args:
        n: number of kernels.
        generator: every draw comes from it, on its device.
        device: where the kernels go (default: the generator's device, else CPU).

    Returns:
        (n, size, size) float32 kernels, each summing to one, zero outside its own size.
    """
    unknown = [k for k in kernel_list if k not in KERNEL_TYPES]
    if unknown:
        raise ValueError(f"kernel_list has unknown types {unknown}; known: {KERNEL_TYPES}")
    if len(kernel_prob) != len(kernel_list) or min(kernel_prob) < 0 or sum(kernel_prob) <= 0:
        raise ValueError(f"kernel_prob must be {len(kernel_list)} non-negative weights, got {kernel_prob!r}")
    _check_size(size, "size")
    for k in kernel_sizes:
        _check_size(k, "kernel_sizes")
        if k > size:
            raise ValueError(f"kernel_sizes must be <= size={size}, got {k}")
    if not 0 < sigma_range[0] <= sigma_range[1]:
        raise ValueError(f"sigma_range must be (low, high) with 0 < low <= high, got {sigma_range!r}")
    draw = generator.device if generator is not None else torch.device(device or "cpu")
    target = torch.device(device) if device is not None else draw

    kernel_size = _random_sizes(n, kernel_sizes, generator, draw)
    use_sinc = rand_bernoulli(n, sinc_prob, generator, draw)
    cutoff = _random_sinc_cutoff(n, kernel_size, generator, draw)
    probs = torch.tensor([float(p) for p in kernel_prob], device=draw)
    kind = torch.multinomial(probs.expand(n, -1), 1, generator=generator).flatten()
    sigma_x = rand_uniform(n, sigma_range[0], sigma_range[1], generator, draw)
    sigma_y = rand_uniform(n, sigma_range[0], sigma_range[1], generator, draw)
    theta = rand_uniform(n, -math.pi, math.pi, generator, draw)
    beta_g = _random_beta(n, betag_range, generator, draw)
    beta_p = _random_beta(n, betap_range, generator, draw)

    names = list(kernel_list)
    isotropic = torch.tensor([n.endswith("iso") and not n.endswith("aniso") for n in names], device=draw)
    family = torch.tensor([0 if n in ("iso", "aniso") else 1 if "generalized" in n else 2 for n in names])
    iso = isotropic[kind]
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    family = family.to(draw)[kind].to(target).view(n, 1, 1)

    args = [t.to(target) for t in (sigma_x, sigma_y, theta)]
    ks = kernel_size.to(target)
    kernels = torch.where(
        family == 0,
        gaussian_kernels(*args, size=size, kernel_size=ks),
        torch.where(
            family == 1,
            generalized_gaussian_kernels(*args, beta_g.to(target), size=size, kernel_size=ks),
            plateau_kernels(*args, beta_p.to(target), size=size, kernel_size=ks),
        ),
    )
    sinc = sinc_kernels(cutoff.to(target), size=size, kernel_size=ks)
    return torch.where(use_sinc.to(target).view(n, 1, 1), sinc, kernels)


def random_sinc_kernels(
    n: int,
    prob: float = 0.8,
    kernel_sizes: Sequence[int] = REAL_ESRGAN_KERNEL_SIZES,
    size: int = 21,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Real-ESRGAN's final filter (n, size, size): with ``prob`` a sinc (cutoff U(pi/3, pi)), else a pulse."""
    draw = generator.device if generator is not None else torch.device(device or "cpu")
    target = torch.device(device) if device is not None else draw
    use = rand_bernoulli(n, prob, generator, draw)
    kernel_size = _random_sizes(n, kernel_sizes, generator, draw)
    cutoff = rand_uniform(n, math.pi / 3, math.pi, generator, draw)
    sinc = sinc_kernels(cutoff.to(target), size=size, kernel_size=kernel_size.to(target))
    return torch.where(use.to(target).view(n, 1, 1), sinc, pulse_kernels(n, size, target))


def _fast_length(n: int) -> int:
    """The smallest 5-smooth integer (factors 2, 3, 5 only) >= n: a fast FFT length."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _fft_correlate(padded: torch.Tensor, kernels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-sample correlation of (N, C, H + k - 1, W + k - 1) with (N, k, k), cropped to (N, C, H, W)."""
    k = kernels.shape[-1]
    size = (_fast_length(padded.shape[-2]), _fast_length(padded.shape[-1]))
    spectrum = torch.fft.rfft2(padded, s=size)
    spectrum = spectrum * torch.fft.rfft2(kernels.flip(-1, -2), s=size)[:, None]
    return torch.fft.irfft2(spectrum, s=size)[..., k - 1 : k - 1 + h, k - 1 : k - 1 + w]


def apply_kernels(images: torch.Tensor, kernels: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Blur each sample with its own kernel, reflect padding: one grouped convolution (or FFT).

    Args:
        images: (N, C, H, W).
        kernels: (N, k, k) (one per sample) or (k, k) (shared), k odd. Correlation, as ``F.conv2d``
            and Real-ESRGAN's ``filter2D`` (the same as convolution for point-symmetric kernels).
        method: "conv" (grouped ``F.conv2d``), "fft" (float32, autocast off; equal to the convolution
            to ~1e-6) or "auto": the FFT on the CPU for kernels of 11 and more (3x faster for 21x21
            there) and on a GPU for kernels of 15 and more on images of 128x128 and more (2x faster for
            21x21 at 256x256 on an H100), the convolution otherwise.

    Returns:
        (N, C, H, W). Images smaller than the kernel's half-width, where reflection is undefined,
        are padded by replicating the border instead.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if method not in ("auto", "conv", "fft"):
        raise ValueError(f"method must be 'auto', 'conv' or 'fft', got {method!r}")
    n, c, h, w = images.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(n, -1, -1)
    if kernels.ndim != 3 or kernels.shape[0] != n or kernels.shape[-1] != kernels.shape[-2]:
        raise ValueError(f"kernels must be (k, k) or ({n}, k, k), got shape {tuple(kernels.shape)}")
    k = kernels.shape[-1]
    _check_size(k, "kernel size")
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    if method == "auto":  # measured: CPU (2 cores) and H100, 16 images
        cpu = images.device.type == "cpu"
        method = "fft" if (cpu and k >= 11) or (not cpu and k >= 15 and h * w >= 128 * 128) else "conv"
    if method == "fft":
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = F.pad(images.float(), (pad, pad, pad, pad), mode=mode)
            out = _fft_correlate(x, kernels.to(images.device, torch.float32), h, w)
        return out.to(images.dtype)
    x = F.pad(images.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.to(images.device, images.dtype)[:, None].expand(n, c, k, k).reshape(n * c, 1, k, k)
    return F.conv2d(x, weight, groups=n * c).view(n, c, h, w)


class RandomBlur(nn.Module):
    """Blur with a Real-ESRGAN random kernel drawn per sample."""

    def __init__(
        self,
        kernel_list: Sequence[str] = KERNEL_TYPES,
        kernel_prob: Sequence[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
        sigma_range: Sequence[float] = (0.2, 3.0),
        betag_range: Sequence[float] = (0.5, 4.0),
        betap_range: Sequence[float] = (1.0, 2.0),
        sinc_prob: float = 0.1,
        kernel_sizes: Sequence[int] = REAL_ESRGAN_KERNEL_SIZES,
        size: int = 21,
    ) -> None:
        super().__init__()
        self.options = dict(
            kernel_list=tuple(kernel_list),
            kernel_prob=tuple(kernel_prob),
            sigma_range=tuple(sigma_range),
            betag_range=tuple(betag_range),
            betap_range=tuple(betap_range),
            sinc_prob=sinc_prob,
            kernel_sizes=tuple(kernel_sizes),
            size=size,
        )
        # validate now, not at the first batch, without touching the global RNG
        random_kernels(1, generator=torch.Generator().manual_seed(0), **self.options)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) -> blurred (N, C, H, W)."""
        kernels = random_kernels(images.shape[0], generator=generator, device=images.device, **self.options)
        return apply_kernels(images, kernels)
