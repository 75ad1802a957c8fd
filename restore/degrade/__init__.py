"""Degradations that make training pairs: batched tensor ops on the training device, seeded.

    from restore.degrade import build_degradation, random_masks
    degrade = build_degradation("realesrgan", scale=4)   # or "bicubic", "blur", "noise", "jpeg"
    gen = torch.Generator(device="cuda").manual_seed(0)
    lq = degrade(hr, generator=gen)                        # (N,3,H,W) -> (N,3,H/4,W/4)
    masks = random_masks(8, 256, 256, coverage=(0.1, 0.5), generator=gen)
    noisy = build_degradation("audio_denoise")(speech, noise, sample_rate=16000, generator=gen)  # (N,1,T)

Every random choice is drawn per sample from the given ``torch.Generator``, so a batch is
reproducible and the work runs where the tensors are. Modules load lazily: importing this package
does not import kornia (none of the degradations needs it).
"""

from .audio import (
    AudioBandwidthDegradation,
    AudioDenoiseDegradation,
    band_limit,
    clip,
    colored_noise,
    equalize,
    gain,
    lowpass,
    mix_at_snr,
    reverberate,
    synthetic_rir,
)
from .blur import (
    KERNEL_TYPES,
    RandomBlur,
    apply_kernels,
    gaussian_kernels,
    generalized_gaussian_kernels,
    motion_kernels,
    plateau_kernels,
    pulse_kernels,
    random_kernels,
    random_sinc_kernels,
    sinc_kernels,
)
from .jpeg import JPEG, jpeg, random_jpeg
from .masks import MaskFolder, RandomMask, apply_mask, random_masks
from .noise import (
    GaussianNoise,
    PoissonNoise,
    add_gaussian_noise,
    add_poisson_noise,
    random_gaussian_noise,
    random_poisson_noise,
)
from .pipelines import (
    DEGRADATIONS,
    BicubicDegradation,
    BlurDegradation,
    JPEGDegradation,
    NoiseDegradation,
    available_degradations,
    build_degradation,
)
from .realesrgan import RealESRGANConfig, RealESRGANDegradation, realesrgan_degrade
from .resize import BOUNDARIES, RESIZE_MODES, Imresize, imresize, imresize_weights, resize

__all__ = [
    "BOUNDARIES",
    "DEGRADATIONS",
    "JPEG",
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "AudioBandwidthDegradation",
    "AudioDenoiseDegradation",
    "BicubicDegradation",
    "BlurDegradation",
    "GaussianNoise",
    "Imresize",
    "JPEGDegradation",
    "MaskFolder",
    "NoiseDegradation",
    "PoissonNoise",
    "RandomBlur",
    "RandomMask",
    "RealESRGANConfig",
    "RealESRGANDegradation",
    "add_gaussian_noise",
    "add_poisson_noise",
    "apply_kernels",
    "apply_mask",
    "available_degradations",
    "band_limit",
    "build_degradation",
    "clip",
    "colored_noise",
    "equalize",
    "gain",
    "gaussian_kernels",
    "generalized_gaussian_kernels",
    "imresize",
    "imresize_weights",
    "jpeg",
    "lowpass",
    "mix_at_snr",
    "motion_kernels",
    "plateau_kernels",
    "pulse_kernels",
    "random_gaussian_noise",
    "random_jpeg",
    "random_kernels",
    "random_masks",
    "random_poisson_noise",
    "random_sinc_kernels",
    "realesrgan_degrade",
    "resize",
    "reverberate",
    "sinc_kernels",
    "synthetic_rir",
]
