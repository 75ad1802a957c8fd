"""AudioPredictor: run an audio model on signals of any length, rate and channel count.

    predictor = AudioPredictor(restore.models.build("spectral_mask"))
    clean, rate = predictor(noisy, 44100)        # (C, T) float32 -> (C, T') at ``rate``

What it does, in order:

1. resamples to the model's rate (``model.sample_rate``, 16 kHz for the bundled models);
2. treats each channel as a mono signal and divides it by its RMS level (floored at
   :data:`restore.train.tasks.LEVEL_FLOOR`), as training did, so the recording level does not matter;
3. runs the model on chunks of ``chunk_seconds`` with ``context`` samples of warm-up on each side and
   cross-faded overlaps (:mod:`restore.infer.chunking`): memory is bounded by the chunk, not the file;
4. multiplies the level back and resamples to the output rate: the input's rate for denoising
   (content above half the model's rate is not kept), the model's rate for bandwidth extension.

Precision follows the image policy (:func:`restore.infer.predictor.default_precision`): float32 on
the CPU, bf16/fp16 autocast on CUDA when the model declares support.
"""

from __future__ import annotations

import torch
from torch import nn

from restore.models.registry import spec_of

from .chunking import process_chunked
from .predictor import compute_autocast, resolve_device, resolve_precision

__all__ = ["AudioPredictor", "model_sample_rate"]

DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_FADE_SECONDS = 0.02
MAX_CONTEXT_SECONDS = 1.0  # warm-up for models with unbounded (fading) memory


def model_sample_rate(model: nn.Module) -> int:
    """The rate an audio model runs at: ``model.sample_rate``, else its config's, else 16 kHz."""
    rate = getattr(model, "sample_rate", None) or getattr(model, "config", {}).get("sample_rate")
    return int(rate or 16000)


class AudioPredictor:
    """Run an audio model (``spec.inputs == ("audio",)``) on ``(C, T)`` signals; see the module docstring.

    ``chunk_seconds``: model input per forward (None: 10 s). ``context``: warm-up samples per side
    (None: the model's receptive field, capped at one second). ``resample_output``: True (default)
    returns the input's rate; False returns the model's rate (bandwidth extension).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device | None = None,
        precision: str | torch.dtype | None = None,
        chunk_seconds: float | None = None,
        context: int | None = None,
        resample_output: bool = True,
    ) -> None:
        self.spec = spec_of(model)
        if self.spec.inputs[0] != "audio":
            raise ValueError(f"model {self.spec.name!r} is not an audio model (it takes {self.spec.inputs})")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.spec, self.device)
        self.model = model.eval().to(self.device)
        self.sample_rate = model_sample_rate(model)
        chunk_seconds = DEFAULT_CHUNK_SECONDS if chunk_seconds is None else float(chunk_seconds)
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
        if context is None:
            context = min(self.spec.receptive_field, int(MAX_CONTEXT_SECONDS * self.sample_rate))
        self.context = int(context)
        self.fade = min(int(DEFAULT_FADE_SECONDS * self.sample_rate), self.context) if self.context else 0
        # a chunk holds its core plus context and fade on both sides; keep the core at least as long
        self.chunk = max(int(chunk_seconds * self.sample_rate), 4 * (self.context + self.fade) + 1)
        self.resample_output = resample_output

    def __repr__(self) -> str:
        return (
            f"AudioPredictor({self.spec.name}, device={self.device}, dtype={self.dtype}, "
            f"rate={self.sample_rate}, chunk={self.chunk}, context={self.context})"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model on ``(N, 1, t)`` level-normalised audio at the model's rate (one chunk)."""
        with compute_autocast(self.device, self.dtype):
            return self.model(x.to(self.device)).float()

    @torch.inference_mode()
    def __call__(self, audio: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
        """``audio (C, T)`` float at ``sample_rate`` -> ``(restored (C, T'), output rate)``, float32 on
        the input's device."""
        from restore.io.audio import resample
        from restore.train.tasks import normalise_level

        if audio.dim() != 2 or audio.shape[-1] == 0 or audio.shape[0] == 0:
            raise ValueError(f"audio must be (channels, samples) with samples > 0, got {tuple(audio.shape)}")
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        home = audio.device
        x = resample(audio.float().to(self.device), sample_rate, self.sample_rate)[:, None]  # (C, 1, T)
        level = normalise_level(x)
        # the level is applied chunk by chunk: no full-length copy of the signal besides the output
        y = process_chunked(
            lambda chunk: self.forward(chunk / level) * level, x, self.chunk, self.context, self.fade
        )
        out_rate = sample_rate if self.resample_output else self.sample_rate
        y = resample(y[:, 0], self.sample_rate, out_rate)
        if self.resample_output and y.shape[-1] != audio.shape[-1]:  # resampling rounds the length
            y = torch.nn.functional.pad(y, (0, max(audio.shape[-1] - y.shape[-1], 0)))[..., : audio.shape[-1]]
        return y.to(home), out_rate
