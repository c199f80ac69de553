"""Real architectures with conv1d layers, built from their published configurations.

Random weights, nothing downloaded: the layers' shapes, paddings, strides, dilations, groups
and weight normalisation are those of the published models, so that autoconv's drop-ins can
be checked (``tests/catalogue/test_zoo.py``) and timed (``scripts/bench_models.py``) on what
people run; the configurations are :mod:`~autoconv.catalogue.configs`, which the layer tables
read too. Each factory takes no argument, so it also serves ``autoconv warm --model
autoconv.catalogue.zoo:hifigan_v1 --input-shape 1,80,200``; :data:`EXAMPLE_INPUTS` gives an
input shape for each.

* :func:`wav2vec2_base`: wav2vec2 / HuBERT base's convolutional feature encoder (7 layers of
  512 filters, group norm on the first), feature projection, and the weight-normed grouped
  positional convolution (768 channels, 128 taps, 16 groups).
* :func:`encodec_24khz_encoder`: EnCodec 24 kHz's SEANet encoder (32 filters, ratios
  8, 5, 4, 2, residual units, 2-layer LSTM, weight-normed convolutions, reflect padding).
* :func:`hifigan_v1`: HiFi-GAN V1's generator (upsampling 8, 8, 2, 2 from 512 channels,
  multi-receptive-field residual blocks of kernels 3, 7, 11 and dilations 1, 3, 5, all
  weight-normed).
* :func:`mamba_130m_mixer`: the convolution path of a Mamba-130m block (d_model 768, inner
  1536, causal depthwise conv of 4 taps called through ``F.conv1d`` on the module's weight,
  as Mamba implementations do; the selective scan, which autoconv does not touch, is left
  out and the SiLU-gated product stands for it).
* :func:`conformer_m_encoder`: Conformer-M's encoder blocks (16 of width 256: macaron
  half-step feed-forwards of 1024, 4-head self-attention, and the convolution module:
  pointwise 256 -> 512 with GLU, depthwise of 31 taps, batch norm, SiLU, pointwise
  256 -> 256) on features already subsampled: the Conv2d subsampling front end is left out,
  autoconv concerning conv1d alone, plain ``nn.MultiheadAttention`` stands for the
  relative positional attention, and there is no dropout.
* :func:`conv_tasnet`: Conv-TasNet (8 kHz, 512 basis filters of 16 samples, 3 repeats of 8
  separator blocks of 512 channels with 3-tap depthwise convs dilated 1 to 128, global layer
  norm, PReLU, skip paths of 128, two sources; the decoder is a ``ConvTranspose1d``, which
  autoconv leaves alone).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from autoconv.catalogue.configs import (
    CONFORMER_M,
    CONV_TASNET,
    ENCODEC_24KHZ,
    HIFIGAN_V1,
    MAMBA_130M,
    WAV2VEC2_BASE,
    Conformer,
    ConvTasNet,
    Encodec,
    HiFiGAN,
    Mamba,
    Wav2Vec2,
)

#: An input shape (batch, channels, length) for each factory: about a second of audio (the
#: Conformer's: 10 s of 40 ms frames; Conv-TasNet's: 2 s at its 8 kHz).
EXAMPLE_INPUTS: dict[str, tuple[int, int, int]] = {
    "wav2vec2_base": (1, 1, 16000),
    "encodec_24khz_encoder": (1, 1, 24000),
    "hifigan_v1": (1, 80, 64),
    "mamba_130m_mixer": (1, 768, 1024),
    "conformer_m_encoder": (1, 256, 250),
    "conv_tasnet": (1, 1, 16000),
}


class _Wav2Vec2PositionalConv(nn.Module):
    def __init__(self, c: Wav2Vec2) -> None:
        super().__init__()
        kernel = c.positional_kernel
        self.conv = weight_norm(nn.Conv1d(c.hidden, c.hidden, kernel, padding=kernel // 2,
                                          groups=c.positional_groups), dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0  # "SamePad": drop the extra frame

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.conv(hidden)
        return F.gelu(x[..., :-self.trim] if self.trim else x)


class Wav2Vec2Base(nn.Module):
    """wav2vec2 base: feature encoder, projection and positional convolution."""

    def __init__(self, c: Wav2Vec2 = WAV2VEC2_BASE) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for index, (kernel, stride) in enumerate(zip(c.kernels, c.strides)):
            layers.append(nn.Conv1d(in_channels, c.channels, kernel, stride, bias=False))
            if index == 0:
                layers.append(nn.GroupNorm(c.channels, c.channels))
            layers.append(nn.GELU())
            in_channels = c.channels
        self.feature_encoder = nn.Sequential(*layers)
        self.projection = nn.Sequential(nn.LayerNorm(c.channels), nn.Linear(c.channels, c.hidden))
        self.positional = _Wav2Vec2PositionalConv(c)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.feature_encoder(audio).transpose(1, 2)
        hidden = self.projection(features).transpose(1, 2)
        return hidden + self.positional(hidden)


class _SConv1d(nn.Module):
    """EnCodec's weight-normed conv with non-causal reflect padding that keeps the length
    a multiple of the stride."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(in_channels, out_channels, kernel, stride,
                                          dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        effective = (kernel - 1) * self.conv.dilation[0] + 1
        total = effective - stride
        frames = (x.shape[-1] - effective + total) / stride + 1
        extra = (math.ceil(frames) - 1) * stride + (effective - total) - x.shape[-1]
        right = total // 2
        return self.conv(F.pad(x, (total - right, right + extra), mode="reflect"))


class _SEANetResidual(nn.Module):
    def __init__(self, dim: int, dilation: int, kernel: int = 3, compress: int = 2) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(), _SConv1d(dim, hidden, kernel, dilation=dilation),
                                   nn.ELU(), _SConv1d(hidden, dim, 1))
        self.shortcut = _SConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class _SLSTM(nn.Module):
    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = x.permute(2, 0, 1)
        return (self.lstm(sequence)[0] + sequence).permute(1, 2, 0)


class EncodecEncoder(nn.Module):
    """EnCodec 24 kHz's SEANet encoder: 1 channel in, 128-dimensional frames out (75 Hz)."""

    def __init__(self, c: Encodec = ENCODEC_24KHZ) -> None:
        super().__init__()
        filters = c.filters
        layers: list[nn.Module] = [_SConv1d(1, filters, c.kernel)]
        mult = 1
        for ratio in reversed(c.ratios):
            layers += [_SEANetResidual(mult * filters, dilation=1, kernel=c.residual_kernel,
                                       compress=c.compress), nn.ELU(),
                       _SConv1d(mult * filters, 2 * mult * filters, 2 * ratio, stride=ratio)]
            mult *= 2
        layers += [_SLSTM(mult * filters), nn.ELU(),
                   _SConv1d(mult * filters, c.dimension, c.kernel)]
        self.model = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def _hifigan_padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class _ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(weight_norm(nn.Conv1d(
            channels, channels, kernel, dilation=d, padding=_hifigan_padding(kernel, d)))
            for d in dilations)
        self.convs2 = nn.ModuleList(weight_norm(nn.Conv1d(
            channels, channels, kernel, padding=_hifigan_padding(kernel, 1)))
            for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for first, second in zip(self.convs1, self.convs2):
            x = x + second(F.leaky_relu(first(F.leaky_relu(x, 0.1)), 0.1))
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN V1: 80 mel bins in, 256 samples out per frame."""

    def __init__(self, c: HiFiGAN = HIFIGAN_V1) -> None:
        super().__init__()
        outer = c.outer_kernel
        self.conv_pre = weight_norm(nn.Conv1d(c.mels, c.channels, outer, padding=outer // 2))
        self.ups = nn.ModuleList(weight_norm(nn.ConvTranspose1d(
            c.channels // 2**i, c.stage_channels(i), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(c.rates, c.up_kernels)))
        self.resblocks = nn.ModuleList(_ResBlock1(c.stage_channels(i), k, c.dilations)
                                       for i in range(len(c.rates)) for k in c.resblock_kernels)
        self.per_stage = len(c.resblock_kernels)
        self.conv_post = weight_norm(nn.Conv1d(c.stage_channels(len(c.rates) - 1), 1, outer,
                                               padding=outer // 2))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.per_stage:(i + 1) * self.per_stage]
            x = sum(block(x) for block in blocks) / self.per_stage
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class MambaMixer(nn.Module):
    """A Mamba-130m block's convolution path (see the module docstring)."""

    def __init__(self, c: Mamba = MAMBA_130M) -> None:
        super().__init__()
        inner = c.inner
        self.in_proj = nn.Linear(c.model, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, c.kernel, groups=inner, padding=c.kernel - 1)
        self.out_proj = nn.Linear(inner, c.model, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        length = hidden.shape[-1]
        x, z = self.in_proj(hidden.transpose(1, 2)).transpose(1, 2).chunk(2, dim=1)
        x = F.conv1d(x, self.conv1d.weight, self.conv1d.bias, padding=self.conv1d.padding,
                     groups=self.conv1d.groups)[..., :length]
        y = F.silu(x) * F.silu(z)
        return self.out_proj(y.transpose(1, 2)).transpose(1, 2)


def _conformer_feed_forward(c: Conformer) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.feed_forward), nn.SiLU(),
                         nn.Linear(c.feed_forward, c.dim))


class _ConformerConvolution(nn.Module):
    """The convolution module, on (batch, frames, dim) like the rest of the block."""

    def __init__(self, c: Conformer) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c.dim)
        self.pointwise_in = nn.Conv1d(c.dim, 2 * c.dim, 1)
        # no bias: the batch norm after it would cancel it (and leave it no gradient)
        self.depthwise = nn.Conv1d(c.dim, c.dim, c.kernel, padding=c.kernel // 2,
                                   groups=c.dim, bias=False)
        self.batch_norm = nn.BatchNorm1d(c.dim)
        self.pointwise_out = nn.Conv1d(c.dim, c.dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)
        y = F.silu(self.batch_norm(self.depthwise(y)))
        return self.pointwise_out(y).transpose(1, 2)


class _ConformerBlock(nn.Module):
    def __init__(self, c: Conformer) -> None:
        super().__init__()
        self.feed_forward_in = _conformer_feed_forward(c)
        self.attention_norm = nn.LayerNorm(c.dim)
        self.attention = nn.MultiheadAttention(c.dim, c.heads, batch_first=True)
        self.convolution = _ConformerConvolution(c)
        self.feed_forward_out = _conformer_feed_forward(c)
        self.norm = nn.LayerNorm(c.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.feed_forward_in(x)
        y = self.attention_norm(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        x = x + self.convolution(x)
        return self.norm(x + 0.5 * self.feed_forward_out(x))


class ConformerEncoder(nn.Module):
    """A Conformer's encoder blocks (Conformer-M's unless told): subsampled features
    (batch, dim, frames) in, the same shape out."""

    def __init__(self, c: Conformer = CONFORMER_M) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_ConformerBlock(c) for _ in range(c.layers)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.blocks(features.transpose(1, 2)).transpose(1, 2)


class _TasNetBlock(nn.Module):
    """One separator block: pointwise B -> H, PReLU, global layer norm, the dilated depthwise
    conv, PReLU, global layer norm, and pointwise convs back to the residual (B) and skip
    (Sc) paths."""

    def __init__(self, c: ConvTasNet, dilation: int) -> None:
        super().__init__()
        self.expand = nn.Conv1d(c.bottleneck, c.hidden, 1)
        self.expand_act, self.expand_norm = nn.PReLU(), nn.GroupNorm(1, c.hidden, eps=1e-8)
        self.depthwise = nn.Conv1d(c.hidden, c.hidden, c.taps, dilation=dilation,
                                   padding=dilation * (c.taps - 1) // 2, groups=c.hidden)
        self.depthwise_act, self.depthwise_norm = nn.PReLU(), nn.GroupNorm(1, c.hidden, eps=1e-8)
        self.residual = nn.Conv1d(c.hidden, c.bottleneck, 1)
        self.skip = nn.Conv1d(c.hidden, c.skip, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.expand_norm(self.expand_act(self.expand(x)))
        y = self.depthwise_norm(self.depthwise_act(self.depthwise(y)))
        return x + self.residual(y), self.skip(y)


class ConvTasNetModel(nn.Module):
    """Conv-TasNet: a learned encoder, the separator of dilated depthwise blocks, a mask per
    source and the transposed-conv decoder: audio (batch, 1, samples) in, (batch, sources,
    samples') out."""

    def __init__(self, c: ConvTasNet = CONV_TASNET) -> None:
        super().__init__()
        self.sources = c.sources
        self.encoder = nn.Conv1d(1, c.basis, c.kernel, stride=c.stride, bias=False)
        self.norm = nn.GroupNorm(1, c.basis, eps=1e-8)
        self.bottleneck = nn.Conv1d(c.basis, c.bottleneck, 1)
        self.blocks = nn.ModuleList(_TasNetBlock(c, 2 ** x)
                                    for _ in range(c.repeats) for x in range(c.blocks))
        self.mask = nn.Sequential(nn.PReLU(), nn.Conv1d(c.skip, c.sources * c.basis, 1))
        self.decoder = nn.ConvTranspose1d(c.basis, 1, c.kernel, stride=c.stride, bias=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        basis = F.relu(self.encoder(audio))
        x, skips = self.bottleneck(self.norm(basis)), 0
        for block in self.blocks:
            x, skip = block(x)
            skips = skips + skip
        batch, channels, frames = basis.shape
        masks = torch.sigmoid(self.mask(skips)).view(batch, self.sources, channels, frames)
        separated = (basis.unsqueeze(1) * masks).view(batch * self.sources, channels, frames)
        return self.decoder(separated).view(batch, self.sources, -1)


def wav2vec2_base() -> nn.Module:
    """wav2vec2 / HuBERT base (facebook/wav2vec2-base)'s convolutional layers."""
    return Wav2Vec2Base()


def encodec_24khz_encoder() -> nn.Module:
    """EnCodec 24 kHz (facebook/encodec_24khz)'s SEANet encoder."""
    return EncodecEncoder()


def hifigan_v1() -> nn.Module:
    """HiFi-GAN V1's generator (jik876/hifi-gan, config_v1)."""
    return HiFiGANGenerator()


def mamba_130m_mixer() -> nn.Module:
    """The convolution path of a Mamba-130m block (state-spaces/mamba-130m)."""
    return MambaMixer()


def conformer_m_encoder() -> nn.Module:
    """Conformer-M's encoder blocks (Gulati et al. 2020, Table 1), no subsampling front end."""
    return ConformerEncoder()


def conv_tasnet() -> nn.Module:
    """Conv-TasNet (Luo & Mesgarani 2019; N=512, L=16, B=128, H=512, Sc=128, P=3, X=8, R=3),
    two sources."""
    return ConvTasNetModel()


#: The factories by name, in :data:`EXAMPLE_INPUTS`' order.
FACTORIES = {"wav2vec2_base": wav2vec2_base, "encodec_24khz_encoder": encodec_24khz_encoder,
             "hifigan_v1": hifigan_v1, "mamba_130m_mixer": mamba_130m_mixer,
             "conformer_m_encoder": conformer_m_encoder, "conv_tasnet": conv_tasnet}
