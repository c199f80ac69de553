"""The published configurations of the architectures the catalogue holds: their numbers, once.

The layer generators (:mod:`~autoconv.catalogue.architectures`), the suite
(:mod:`~autoconv.catalogue.suite`) and the zoo's models (:mod:`~autoconv.catalogue.zoo`) read
the channels, kernels, strides, dilations and rates of a model from here, so that a model's
layers and the model built from them cannot disagree. Only the configurations; never weights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wav2Vec2:
    """wav2vec 2.0 / HuBERT / WavLM base (Baevski et al. 2020; facebook/wav2vec2-base):
    the convolutional feature encoder, its projection and the grouped positional conv."""

    sample_rate: int = 16000
    channels: int = 512
    kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    hidden: int = 768
    positional_kernel: int = 128
    positional_groups: int = 16


@dataclass(frozen=True)
class Whisper:
    """Whisper's encoder stem (Radford et al. 2022): two K=3 convs on 30 s of log-mel frames,
    the second with stride 2; the width depends on the model size."""

    mels: int = 80
    frames: int = 3000
    kernel: int = 3
    tiny: int = 384
    base: int = 512
    small: int = 768


@dataclass(frozen=True)
class ConvTasNet:
    """Conv-TasNet (Luo & Mesgarani 2019): N basis filters of L samples (stride L/2), a
    bottleneck of B channels, separator blocks of H channels with P-tap depthwise convs
    dilated 1, 2, ..., 2^(X-1), repeated R times, skip connections of Sc channels. The
    defaults are the paper's best non-causal configuration."""

    sample_rate: int = 8000
    basis: int = 512       # N
    kernel: int = 16       # L
    bottleneck: int = 128  # B
    hidden: int = 512      # H
    taps: int = 3          # P
    blocks: int = 8        # X
    repeats: int = 3       # R
    skip: int = 128        # Sc
    sources: int = 2

    @property
    def stride(self) -> int:
        """The encoder's stride (half its kernel)."""
        return self.kernel // 2


@dataclass(frozen=True)
class HiFiGAN:
    """HiFi-GAN V1's generator (Kong et al. 2020; jik876/hifi-gan config_v1)."""

    mels: int = 80
    channels: int = 512
    rates: tuple[int, ...] = (8, 8, 2, 2)
    up_kernels: tuple[int, ...] = (16, 16, 4, 4)
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    dilations: tuple[int, ...] = (1, 3, 5)
    outer_kernel: int = 7  # conv_pre and conv_post

    def stage_channels(self, stage: int) -> int:
        """Channels after upsampling stage ``stage`` (0-based)."""
        return self.channels // 2 ** (stage + 1)


@dataclass(frozen=True)
class Encodec:
    """EnCodec 24 kHz's SEANet encoder (Défossez et al. 2022; facebook/encodec_24khz):
    ``ratios`` are the decoder's, the encoder downsamples by them in reverse order."""

    sample_rate: int = 24000
    filters: int = 32
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    dimension: int = 128
    kernel: int = 7
    residual_kernel: int = 3
    compress: int = 2


@dataclass(frozen=True)
class Mamba:
    """A Mamba block's convolution (Gu & Dao 2023): causal depthwise conv on the inner
    width ``expand * model``."""

    model: int
    expand: int = 2
    kernel: int = 4

    @property
    def inner(self) -> int:
        """The depthwise conv's channels."""
        return self.expand * self.model


@dataclass(frozen=True)
class WaveNet:
    """WaveNet (van den Oord et al. 2016): 256 mu-law classes in, 64 residual channels,
    gated K=2 dilated convs (filter and gate: 128 channels), 256 skip channels."""

    classes: int = 256
    residual: int = 64
    gate: int = 128
    skip: int = 256
    kernel: int = 2


@dataclass(frozen=True)
class Conformer:
    """A Conformer encoder (Gulati et al. 2020): ``layers`` blocks of width ``dim``, each two
    half-step feed-forwards of ``expansion * dim`` around self-attention of ``heads`` heads
    and a convolution module (pointwise 2 * dim with GLU, depthwise of ``kernel`` taps,
    pointwise dim). The defaults are Conformer-M (the paper's Table 1); the paper lists a
    kernel of 32, implementations (ESPnet, NeMo, torchaudio) use 31, odd for 'same' padding."""

    dim: int = 256
    layers: int = 16
    heads: int = 4
    kernel: int = 31
    expansion: int = 4

    @property
    def feed_forward(self) -> int:
        """The feed-forward modules' hidden width."""
        return self.expansion * self.dim


WAV2VEC2_BASE = Wav2Vec2()
WHISPER = Whisper()
CONV_TASNET = ConvTasNet()
#: A smaller separator of the paper's hyperparameter table (H=256): a depthwise TCN.
CONV_TASNET_H256 = ConvTasNet(hidden=256)
HIFIGAN_V1 = HiFiGAN()
ENCODEC_24KHZ = Encodec()
MAMBA_130M = Mamba(model=768)
MAMBA_370M = Mamba(model=1024)
WAVENET = WaveNet()
CONFORMER_M = Conformer()
