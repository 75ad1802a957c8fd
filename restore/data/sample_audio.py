"""Built-in sample audio: deterministic speech-like and noise signals, synthesised (no files, no data).

    from restore.data import synthetic_speech, sample_speech_clips, sample_noise_clips
    speech = synthetic_speech(3.0, sample_rate=16000, seed=0)    # float32 (1, 48000), about -20 dBFS
    clips = sample_speech_clips(count=8)                          # 8 "speakers"
    noises = sample_noise_clips(count=4)                          # coloured, hum, babble, non-stationary

The speech is a source-filter synthesis: a glottal pulse train (Rosenberg pulse, radiated) whose pitch
follows a phrase contour (declination, accents, jitter, shimmer) between 80 and 250 Hz, shaped by
moving vowel formants F1-F3 (Peterson & Barney's averages, scaled per speaker) plus fixed F4/F5,
unvoiced fricatives and stop bursts (band-passed noise), syllable envelopes and pauses. It is not
intelligible, but its pitch, formants, level, syllable rhythm and pauses are where real speech has
them, which is what tests, demos and a first training run of an enhancement model need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NOISE_KINDS",
    "VOWELS",
    "SpeechSynthesis",
    "sample_noise_clips",
    "sample_speech_clips",
    "synthesize_speech",
    "synthetic_speech",
]

# Adult male formant averages F1, F2, F3 in Hz (Peterson & Barney 1952).
VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "ɪ": (390.0, 1990.0, 2550.0),
    "ɛ": (530.0, 1840.0, 2480.0),
    "æ": (660.0, 1720.0, 2410.0),
    "ɑ": (730.0, 1090.0, 2440.0),
    "ɔ": (570.0, 840.0, 2410.0),
    "ʊ": (440.0, 1020.0, 2240.0),
    "u": (300.0, 870.0, 2240.0),
    "ʌ": (640.0, 1190.0, 2390.0),
    "ɝ": (490.0, 1350.0, 1690.0),
}
_BANDWIDTHS = (70.0, 100.0, 140.0, 220.0, 300.0)  # F1..F5 bandwidths, Hz
_HIGHER_FORMANTS = (3400.0, 4400.0)  # F4, F5 for a male voice, scaled per speaker
_F0_LIMITS = (80.0, 250.0)
_LEVEL_DBFS = -20.0
_PEAK = 0.98


@dataclass
class SpeechSynthesis:
    """A synthetic utterance and what it was made of (for tests and analysis)."""

    audio: Tensor  # (1, T) float32
    f0: Tensor  # (T,) pitch in Hz where voiced, 0 elsewhere
    voiced: Tensor  # (T,) bool: inside a vowel
    formants: Tensor  # (frames, 3) F1-F3 in Hz, one row per ``hop`` samples (frame i centred at i * hop)
    hop: int
    sample_rate: int


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An int in [low, high]."""
    return int(torch.randint(low, high + 1, (), generator=generator))


@dataclass
class _Speaker:
    f0: float  # base pitch, Hz
    formant_scale: float  # vocal tract length factor (1 = average male)
    accent_semitones: float
    syllable_rate: float  # syllables per second
    breathiness: float
    fricative_db: float  # fricative level relative to vowels


def _speaker(generator: torch.Generator) -> _Speaker:
    high = float(torch.rand((), generator=generator)) < 0.5
    return _Speaker(
        f0=_uniform(generator, 165.0, 205.0) if high else _uniform(generator, 95.0, 130.0),
        formant_scale=(1.17 if high else 1.0) * _uniform(generator, 0.94, 1.06),
        accent_semitones=_uniform(generator, 2.0, 4.5),
        syllable_rate=_uniform(generator, 3.5, 5.5),
        breathiness=_uniform(generator, 0.02, 0.08),
        fricative_db=_uniform(generator, -16.0, -8.0),
    )


@dataclass
class _Segment:
    kind: str  # "vowel", "fricative", "burst", "pause"
    start: int
    end: int
    vowel: int = 0
    center: float = 0.0  # fricative band centre, Hz
    width: float = 0.0  # fricative band width, Hz
    amplitude: float = 1.0
    accent: float = 0.0  # semitones of pitch accent (vowels)


def _timeline(total: int, rate: int, speaker: _Speaker, generator: torch.Generator) -> list[_Segment]:
    """Phrases of words of syllables (onset consonant, vowel, optional coda) with pauses, to ``total``."""
    fricatives = [  # (centre, width) in Hz: s, sh, f, a breathy h-like band
        (min(5800.0, 0.38 * rate), min(1800.0, 0.12 * rate)),
        (min(2900.0, 0.30 * rate) * speaker.formant_scale, 900.0),
        (min(4000.0, 0.30 * rate), min(3500.0, 0.22 * rate)),
        (1600.0 * speaker.formant_scale, 1200.0),
    ]
    segments: list[_Segment] = []
    t = int(rate * _uniform(generator, 0.05, 0.25))
    segments.append(_Segment("pause", 0, t))
    beat = 1.0 / speaker.syllable_rate
    while t < total:
        for _ in range(_randint(generator, 2, 5)):  # words in a phrase
            for _ in range(_randint(generator, 1, 3)):  # syllables in a word
                onset = float(torch.rand((), generator=generator))
                if onset < 0.45:
                    centre, width = fricatives[_randint(generator, 0, len(fricatives) - 1)]
                    length = int(rate * _uniform(generator, 0.05, 0.11) * beat / 0.22)
                    amp = 10 ** (speaker.fricative_db / 20) * _uniform(generator, 0.6, 1.0)
                    segments.append(
                        _Segment("fricative", t, t + length, center=centre, width=width, amplitude=amp)
                    )
                    t += length
                elif onset < 0.7:
                    length = int(rate * _uniform(generator, 0.015, 0.03))
                    centre = _uniform(generator, 1500.0, min(4500.0, 0.4 * rate))
                    amp = 10 ** ((speaker.fricative_db + 4) / 20)
                    segments.append(_Segment("pause", t, t + int(0.02 * rate)))  # stop closure
                    t += int(0.02 * rate)
                    segments.append(
                        _Segment("burst", t, t + length, center=centre, width=0.5 * centre, amplitude=amp)
                    )
                    t += length
                length = int(rate * beat * _uniform(generator, 0.4, 0.8))
                accented = float(torch.rand((), generator=generator)) < 0.35
                accent = speaker.accent_semitones if accented else 0.0
                segments.append(
                    _Segment(
                        "vowel", t, t + length, vowel=_randint(generator, 0, len(VOWELS) - 1),
                        amplitude=_uniform(generator, 0.55, 1.0), accent=accent,
                    )
                )
                t += length
                if float(torch.rand((), generator=generator)) < 0.2:  # coda fricative
                    centre, width = fricatives[_randint(generator, 0, len(fricatives) - 1)]
                    length = int(rate * _uniform(generator, 0.04, 0.09))
                    amp = 10 ** (speaker.fricative_db / 20) * _uniform(generator, 0.5, 0.9)
                    segments.append(
                        _Segment("fricative", t, t + length, center=centre, width=width, amplitude=amp)
                    )
                    t += length
            gap = int(rate * _uniform(generator, 0.0, 0.06))  # between words
            segments.append(_Segment("pause", t, t + gap))
            t += gap
        pause = int(rate * _uniform(generator, 0.15, 0.5))  # between phrases
        segments.append(_Segment("pause", t, t + pause, amplitude=-1.0))  # amplitude -1 marks a phrase end
        t += pause
    return segments


def _envelope(length: int, attack: float = 0.25) -> Tensor:
    """A smooth syllable envelope: raised-cosine attack and release, flat top."""
    u = torch.linspace(0.0, 1.0, length, dtype=torch.float64)
    rise = (u / attack).clamp(max=1.0)
    fall = ((1.0 - u) / attack).clamp(max=1.0)
    return torch.sin(0.5 * math.pi * torch.minimum(rise, fall)) ** 2


def _smooth(x: Tensor, width: int) -> Tensor:
    """Moving average of a 1-D tensor (same length, edges replicated)."""
    if width <= 1:
        return x
    padded = torch.cat([x[:1].expand(width // 2), x, x[-1:].expand(width - 1 - width // 2)])
    sums = torch.cat([padded.new_zeros(1), torch.cumsum(padded, dim=0)])
    return (sums[width:] - sums[:-width]) / width


def _resonances(freqs: Tensor, formants: Tensor, bandwidths: Tensor) -> Tensor:
    """Magnitude of a cascade of two-pole resonators, 1 at DC.

    freqs (F,), formants (frames, K), bandwidths (K,) -> (F, frames).
    """
    f = freqs.view(-1, 1, 1)
    fc = formants.unsqueeze(0)
    bw = bandwidths.view(1, 1, -1)
    magnitude = fc**2 / torch.sqrt((fc**2 - f**2) ** 2 + (bw * f) ** 2)
    return magnitude.prod(dim=-1)


def _squash_pitch(f0: Tensor) -> Tensor:
    """Map any pitch smoothly into the open range (80, 250) Hz (tanh on a log scale; ~identity inside)."""
    low, high = math.log2(_F0_LIMITS[0]), math.log2(_F0_LIMITS[1])
    middle, half = (low + high) / 2, (high - low) / 2
    return torch.pow(2.0, middle + half * torch.tanh((torch.log2(f0) - middle) / half))


def synthesize_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> SpeechSynthesis:
    """A speech-like utterance of ``seconds`` at ``sample_rate`` and its pitch/formant tracks.

    Deterministic for a ``seed``; different seeds are different speakers (low or high voice, vocal
    tract length, accent range, speaking rate) saying different "words". RMS level -20 dBFS (peak at
    most 0.98).
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 4000:
        raise ValueError(f"sample_rate must be an int >= 4000 (Hz), got {sample_rate!r}")
    rate = sample_rate
    total = max(1, int(round(seconds * rate)))
    generator = torch.Generator().manual_seed(int(seed) % (2**63))
    speaker = _speaker(generator)
    segments = _timeline(total, rate, speaker, generator)
    length = max(total, segments[-1].end)

    # pitch contour: declining over each phrase, accents on some vowels, slow drift, then jitter
    f0 = torch.zeros(length, dtype=torch.float64)
    phrase_start = 0
    for segment in segments:
        if segment.kind == "pause" and segment.amplitude < 0:  # phrase end: declination over the phrase
            n = segment.start - phrase_start
            if n > 0:
                start = speaker.f0 * _uniform(generator, 1.05, 1.2)
                end = speaker.f0 * _uniform(generator, 0.82, 0.92)
                f0[phrase_start : segment.start] = torch.linspace(start, end, n, dtype=torch.float64)
            f0[segment.start : segment.end] = speaker.f0 * 0.9
            phrase_start = segment.end
    f0[phrase_start:] = f0[phrase_start - 1] if phrase_start > 0 else speaker.f0
    accents = torch.zeros(length, dtype=torch.float64)
    voiced_amp = torch.zeros(length, dtype=torch.float64)
    voiced = torch.zeros(length, dtype=torch.bool)
    for segment in segments:
        if segment.kind == "vowel" and segment.end > segment.start:
            n = segment.end - segment.start
            u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
            accents[segment.start : segment.end] = segment.accent * torch.sin(math.pi * u)
            voiced_amp[segment.start : segment.end] = segment.amplitude * _envelope(n)
            voiced[segment.start : segment.end] = True
    # slow drift of about 1 semitone (moving average of white noise: std 1/sqrt(width)), jitter ~0.7 %
    width = int(0.25 * rate)
    drift = _smooth(torch.randn(length, generator=generator, dtype=torch.float64), width) * math.sqrt(width)
    f0 = f0 * torch.pow(2.0, (accents + 0.8 * drift) / 12.0)
    width = max(1, int(0.004 * rate))
    jitter = _smooth(torch.randn(length, generator=generator, dtype=torch.float64), width) * math.sqrt(width)
    f0 = _squash_pitch(f0 * (1.0 + 0.007 * jitter))

    # glottal source: Rosenberg flow pulse per cycle, differentiated (lip radiation), shimmer per cycle
    phase = torch.cumsum(f0 / rate, dim=0)
    cycle, p = phase.floor().long(), phase - phase.floor()
    open_phase, close_phase = 0.4, 0.16
    flow = torch.where(
        p < open_phase,
        0.5 * (1.0 - torch.cos(math.pi * p / open_phase)),
        torch.where(
            p < open_phase + close_phase,
            torch.cos(0.5 * math.pi * (p - open_phase) / close_phase),
            torch.zeros_like(p),
        ),
    )
    shimmer = 1.0 + 0.06 * torch.randn(int(cycle[-1]) + 2, generator=generator, dtype=torch.float64)
    flow = flow * shimmer[cycle]
    source = torch.diff(flow, prepend=flow[:1]) * rate / (2 * math.pi * speaker.f0)
    breath = torch.randn(length, generator=generator, dtype=torch.float64) * speaker.breathiness
    source = (source + breath) * voiced_amp

    # formant tracks per STFT frame: vowel targets held over each vowel's middle, gliding between vowels
    n_fft = 1 << max(8, math.ceil(math.log2(0.032 * rate)))
    hop = n_fft // 4
    frames = length // hop + 1
    frame_time = torch.arange(frames, dtype=torch.float64) * hop
    anchors_t, anchors_f = [], []
    table = torch.tensor(list(VOWELS.values()), dtype=torch.float64) * speaker.formant_scale
    for segment in segments:
        if segment.kind == "vowel" and segment.end > segment.start:
            n = segment.end - segment.start
            for position in (0.3, 0.7):
                anchors_t.append(segment.start + position * n)
                anchors_f.append(table[segment.vowel])
    if not anchors_t:  # too short for a vowel
        anchors_t, anchors_f = [0.0], [table[4]]
    anchor_t = torch.tensor(anchors_t, dtype=torch.float64)
    anchor_f = torch.stack(anchors_f)
    index = torch.searchsorted(anchor_t, frame_time).clamp(1, max(1, len(anchors_t) - 1))
    if len(anchors_t) == 1:
        formants = anchor_f.expand(frames, 3).clone()
    else:
        t0, t1 = anchor_t[index - 1], anchor_t[index]
        w = ((frame_time - t0) / (t1 - t0).clamp_min(1e-9)).clamp(0.0, 1.0).unsqueeze(-1)
        formants = anchor_f[index - 1] * (1 - w) + anchor_f[index] * w
    higher = torch.tensor(_HIGHER_FORMANTS, dtype=torch.float64) * speaker.formant_scale
    all_formants = torch.cat([formants, higher.expand(frames, 2)], dim=1)
    nyquist = rate / 2
    keep = int((all_formants[0] < 0.95 * nyquist).sum())
    bandwidths = torch.tensor(_BANDWIDTHS, dtype=torch.float64)[:keep]

    window = torch.hann_window(n_fft, dtype=torch.float64)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / rate, dtype=torch.float64)
    spec = torch.stft(source, n_fft, hop, window=window, return_complex=True, center=True)
    spec = spec * _resonances(freqs, all_formants[:, :keep], bandwidths)[:, : spec.shape[1]]
    vowels = torch.istft(spec, n_fft, hop, window=window, center=True, length=length)

    # unvoiced sounds: band-passed noise (unit RMS) per segment under its own envelope, scaled
    # relative to the vowels' RMS level
    unvoiced = torch.zeros(length, dtype=torch.float64)
    for segment in segments:
        if segment.kind in ("fricative", "burst") and segment.end > segment.start:
            n = segment.end - segment.start
            size = 2 * n
            spectrum = torch.fft.rfft(torch.randn(size, generator=generator, dtype=torch.float64))
            freqs = torch.fft.rfftfreq(size, d=1.0 / rate, dtype=torch.float64)
            shape = torch.exp(-0.5 * ((freqs - segment.center) / (0.5 * segment.width)) ** 2)
            band = torch.fft.irfft(spectrum * shape, n=size)[n // 2 : n // 2 + n]
            band = band / band.square().mean().sqrt().clamp_min(1e-12)
            attack = 0.3 if segment.kind == "fricative" else 0.1
            unvoiced[segment.start : segment.end] += band * segment.amplitude * _envelope(n, attack)
    voiced_rms = float(vowels[voiced].square().mean().sqrt()) if voiced.any() else 1.0
    audio = (vowels + unvoiced * voiced_rms)[:total]

    rms = audio.square().mean().sqrt().clamp_min(1e-12)
    audio = audio * (10 ** (_LEVEL_DBFS / 20) / rms)
    peak = float(audio.abs().max())
    if peak > _PEAK:
        audio = audio * (_PEAK / peak)
    f0_voiced = torch.where(voiced[:total], f0[:total], torch.zeros(total, dtype=torch.float64))
    return SpeechSynthesis(
        audio=audio.float().unsqueeze(0),
        f0=f0_voiced.float(),
        voiced=voiced[:total].clone(),
        formants=formants[: total // hop + 1].float(),
        hop=hop,
        sample_rate=rate,
    )


def synthetic_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> Tensor:
    """A deterministic speech-like signal ``(1, T)`` float32 at -20 dBFS RMS (:func:`synthesize_speech`)."""
    return synthesize_speech(seconds, sample_rate, seed).audio


def sample_speech_clips(count: int = 8, seconds: float = 3.0, sample_rate: int = 16000) -> list[Tensor]:
    """``count`` synthetic utterances ``(1, T)`` of different speakers (seeds 0..count-1)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    return [synthetic_speech(seconds, sample_rate, seed=i) for i in range(count)]


NOISE_KINDS = ("colored", "hum", "babble", "nonstationary")


def _normalise(x: Tensor) -> Tensor:
    x = x - x.mean()
    x = x * (10 ** (_LEVEL_DBFS / 20) / x.square().mean().sqrt().clamp_min(1e-12))
    peak = float(x.abs().max())
    return x * (_PEAK / peak) if peak > _PEAK else x


def _hum(total: int, rate: int, generator: torch.Generator) -> Tensor:
    """Mains hum: 50 or 60 Hz and harmonics (odd ones stronger), slight wobble, a little hiss."""
    mains = 50.0 if float(torch.rand((), generator=generator)) < 0.5 else 60.0
    wobble = _smooth(torch.randn(total, generator=generator, dtype=torch.float64), int(0.5 * rate)) * 0.02
    phase = 2 * math.pi * torch.cumsum(mains * (1.0 + wobble * 0.01), dim=0) / rate
    hum = torch.zeros(total, dtype=torch.float64)
    for harmonic in range(1, 13):
        if harmonic * mains >= 0.45 * rate:
            break
        level = harmonic**-1.2 * (1.5 if harmonic % 2 else 0.7)
        offset = 2 * math.pi * float(torch.rand((), generator=generator))
        hum += level * torch.sin(harmonic * phase + offset)
    hiss = torch.randn(total, generator=generator, dtype=torch.float64) * 0.03 * hum.square().mean().sqrt()
    return hum + hiss


def _babble(total: int, rate: int, seed: int, generator: torch.Generator, talkers: int = 6) -> Tensor:
    """Several synthetic talkers at once, each at a random level and time offset."""
    seconds = total / rate
    babble = torch.zeros(total, dtype=torch.float64)
    for talker in range(talkers):
        voice = synthesize_speech(seconds, rate, seed=1_000_003 * (seed + 1) + talker).audio[0].double()
        shift = _randint(generator, 0, total - 1)
        babble += torch.roll(voice, shift) * 10 ** (_uniform(generator, -6.0, 0.0) / 20)
    return babble


def _nonstationary(total: int, rate: int, generator: torch.Generator) -> Tensor:
    """Coloured noise whose level wanders by tens of dB, with a few decaying bursts (knocks)."""
    from restore.degrade.audio import colored_noise

    exponent = _uniform(generator, 0.5, 1.5)
    base = colored_noise((1, 1, total), exponent, generator)[0, 0].double()
    steps = max(2, int(total / rate / 0.4) + 2)
    levels_db = torch.cumsum(torch.randn(steps, generator=generator, dtype=torch.float64) * 6.0, dim=0)
    levels_db = (levels_db - levels_db.mean()).clamp(-20.0, 20.0)
    position = torch.linspace(0, steps - 1, total, dtype=torch.float64)
    low = position.floor().long().clamp(max=steps - 2)
    w = position - low
    w = 0.5 - 0.5 * torch.cos(math.pi * w)  # smooth steps
    envelope_db = levels_db[low] * (1 - w) + levels_db[low + 1] * w
    noise = base * torch.pow(10.0, envelope_db / 20.0)
    for _ in range(_randint(generator, 1, 4)):  # knocks
        start = _randint(generator, 0, total - 1)
        n = min(total - start, int(0.15 * rate))
        decay = torch.exp(-torch.arange(n, dtype=torch.float64) / (0.02 * rate))
        burst = torch.randn(n, generator=generator, dtype=torch.float64) * decay
        noise[start : start + n] += burst * 4.0 * noise.square().mean().sqrt()
    return noise


def sample_noise_clips(count: int = 4, seconds: float = 6.0, sample_rate: int = 16000) -> list[Tensor]:
    """``count`` synthetic noise clips ``(1, T)`` at -20 dBFS RMS, cycling through :data:`NOISE_KINDS`.

    Clip ``i`` is of kind ``NOISE_KINDS[i % 4]``: coloured Gaussian noise (pink, then white, brown on
    later rounds), mains hum with harmonics, babble of six synthetic talkers, and non-stationary
    noise (level wandering over +-20 dB with knocks). Deterministic.
    """
    from restore.degrade.audio import colored_noise

    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    total = max(1, int(round(seconds * sample_rate)))
    clips = []
    for i in range(count):
        generator = torch.Generator().manual_seed(7919 * (i + 1))
        kind = NOISE_KINDS[i % len(NOISE_KINDS)]
        if kind == "colored":
            exponent = (1.0, 0.0, 2.0)[(i // len(NOISE_KINDS)) % 3]
            clip = colored_noise((1, 1, total), exponent, generator)[0, 0].double()
        elif kind == "hum":
            clip = _hum(total, sample_rate, generator)
        elif kind == "babble":
            clip = _babble(total, sample_rate, i, generator)
        else:
            clip = _nonstationary(total, sample_rate, generator)
        clips.append(_normalise(clip).float().unsqueeze(0))
    return clips
