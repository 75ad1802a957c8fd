"""File input/output: images (bit depth, alpha, EXIF orientation, atomic writes) and audio.

    from restore.io import read_image, write_image, read_audio, write_audio
    img = read_image("photo.png")        # float32 (3, H, W) in [0, 1]
    write_image("out.png", img)
    audio, rate = read_audio("speech.wav", sample_rate=16000, mono=True)   # float32 (1, T), int
    write_audio("out.flac", audio, rate)
"""

from .audio import (
    AUDIO_SUFFIXES,
    KAISER_BEST,
    AudioInfo,
    AudioReadError,
    audio_info,
    audio_suffixes,
    list_audio,
    read_audio,
    resample,
    write_audio,
)
from .image import (
    IMAGE_SUFFIXES,
    ImageReadError,
    image_size,
    list_images,
    read_icc_profile,
    read_image,
    read_image_with_alpha,
    write_array,
    write_image,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "KAISER_BEST",
    "AudioInfo",
    "AudioReadError",
    "ImageReadError",
    "audio_info",
    "audio_suffixes",
    "image_size",
    "list_audio",
    "list_images",
    "read_audio",
    "read_icc_profile",
    "read_image",
    "read_image_with_alpha",
    "resample",
    "write_audio",
    "write_array",
    "write_image",
]
