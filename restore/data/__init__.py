"""Datasets: clean image folders (degraded later on the device), paired folders, sample images and audio.

    from restore.data import CleanImageFolder, PairedImageFolder, sample_image
    train = CleanImageFolder("BSDS500_train", patch_size=128, scale=4)
    val = PairedImageFolder("Set5", scale=4)           # HR/ + LR_bicubic/X4/

    from restore.data import SpeechNoiseDataset, PairedAudioFolder, synthetic_speech
    speech = SpeechNoiseDataset()                       # built-in synthetic speech and noise, 2 s items
    pairs = PairedAudioFolder("VoiceBank_DEMAND_debug") # clean/ + noisy/
"""

from .audio import PairedAudioFolder, SpeechNoiseDataset
from .folder import CleanImageFolder, derive_seed
from .paired import PairedImageFolder
from .sample import sample_image, sample_images_dir, sample_names, sample_path
from .sample_audio import sample_noise_clips, sample_speech_clips, synthesize_speech, synthetic_speech

__all__ = [
    "CleanImageFolder",
    "PairedAudioFolder",
    "PairedImageFolder",
    "SpeechNoiseDataset",
    "derive_seed",
    "sample_image",
    "sample_images_dir",
    "sample_names",
    "sample_noise_clips",
    "sample_path",
    "sample_speech_clips",
    "synthesize_speech",
    "synthetic_speech",
]
