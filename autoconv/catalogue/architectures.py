"""Each architecture's conv1d layers, as signatures: one generator per published model.

A generator takes the sizes a model runs at (batch, seconds or frames, a width) and yields
``(layer name, Signature)`` for its conv1d layers in order; each layer's input length follows
from the layers before it (strides, padding). Repeated layers (a block used N times) appear
once per distinct shape. The numbers come from :mod:`~autoconv.catalogue.configs` where a model
is also built (the zoo) or used by the suite; the others carry theirs here. All calls are
float32, CPU, no gradients.

Sources, one line each (the configuration, not any weights): wav2vec 2.0 base (Baevski et
al. 2020); Whisper tiny/base/small encoder stems (Radford et al. 2022); SincNet (Ravanelli &
Bengio 2018); Conv-TasNet (Luo & Mesgarani 2019, N=512 L=16 B=128 H=512 P=3 X=8); HiFi-GAN
V1 (Kong et al. 2020); EnCodec 24 kHz SEANet encoder (Défossez et al. 2022); QuartzNet 5x5
(Kriman et al. 2020); Mamba-130m and -370m (Gu & Dao 2023); Hyena (Poli et al. 2023) and
S4D (Gu et al. 2022) long convolutions computed as explicit kernels; TCN (Bai et al. 2018,
sequential MNIST and polyphonic music); the ECG ResNet of Hannun et al. 2019; WaveNet (van
den Oord et al. 2016, 64 residual / 128 gate channels); Demucs v2 (Défossez et al. 2019);
the Conformer convolution module (Gulati et al. 2020, d=256 K=31 and d=512 K=15; FastConformer,
Rekesh et al. 2023, d=512 K=9); MelGAN's discriminator (Kumar et al. 2019, grouped); the FCN
and ResNet baselines for time series (Wang et al. 2017); Kim's text CNN (2014) and the
character CNN of Zhang et al. (2015); EEG band-pass FIR banks and radar pulse compression
(matched filters) as used in biosignal and radar processing; stereo reverbs (room impulse
responses at 48 kHz); Vocos' ConvNeXt backbone (Siuzdak 2023, dim 512, depthwise K=7); the
x-vector TDNN (Snyder et al. 2018).
"""

from __future__ import annotations

from collections.abc import Iterator

from autoconv.catalogue.configs import (
    CONFORMER_M,
    CONV_TASNET,
    ENCODEC_24KHZ,
    HIFIGAN_V1,
    WAV2VEC2_BASE,
    WAVENET,
    WHISPER,
    ConvTasNet,
    Encodec,
    HiFiGAN,
    Mamba,
    Wav2Vec2,
    WaveNet,
    Whisper,
)
from autoconv.signature import Signature, resolve_padding

Layers = Iterator[tuple[str, Signature]]


def conv(batch: int, cin: int, cout: int, length: int, kernel: int, *, stride: int = 1,
         padding: int | str = 0, dilation: int = 1, groups: int = 1,
         pre_padded: tuple[int, int] = (0, 0)) -> Signature:
    """The signature of ``F.conv1d`` on a (batch, cin, length) input.

    Args:
        padding: ``F.conv1d``'s own padding (an int, or ``'same'``).
        pre_padded: samples the model pads the input with first (``F.pad``: causal and
            reflect padding), which the convolution then sees as input.
    """
    left, right = resolve_padding(padding, kernel, dilation, stride)
    return Signature(batch, cin, cout, length + sum(pre_padded), kernel, stride, left, right,
                     dilation, groups, "float32", "cpu", False)


def out_length(s: Signature) -> int:
    """The output length of ``s`` (the next layer's input length)."""
    return s.output_length


def layer(layers: Layers, name: str) -> Signature:
    """The signature of the layer called ``name`` among ``layers``.

    Raises:
        KeyError: no such layer (the message lists the names there are).
    """
    table = dict(layers)
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"no layer {name!r}; there are: {', '.join(table)}") from None


def wav2vec2_base(batch: int, seconds: float, c: Wav2Vec2 = WAV2VEC2_BASE) -> Layers:
    length = int(c.sample_rate * seconds)
    cin = 1
    for index, (kernel, stride) in enumerate(zip(c.kernels, c.strides)):
        s = conv(batch, cin, c.channels, length, kernel, stride=stride)
        yield f"feature_encoder_{index}", s
        length, cin = out_length(s), c.channels
    yield "positional_conv", conv(batch, c.hidden, c.hidden, length, c.positional_kernel,
                                  padding=c.positional_kernel // 2, groups=c.positional_groups)


def whisper(batch: int, width: int, c: Whisper = WHISPER) -> Layers:
    yield "conv1", conv(batch, c.mels, width, c.frames, c.kernel, padding=c.kernel // 2)
    yield "conv2", conv(batch, width, width, c.frames, c.kernel, stride=2,
                        padding=c.kernel // 2)


def sincnet(batch: int, samples: int) -> Layers:
    first = conv(batch, 1, 80, samples, 251)
    yield "sinc_filters", first
    length = out_length(first) // 3  # max-pool 3
    second = conv(batch, 80, 60, length, 5)
    yield "conv2", second
    yield "conv3", conv(batch, 60, 60, out_length(second) // 3, 5)


def conv_tasnet(batch: int, seconds: float, c: ConvTasNet = CONV_TASNET,
                dilations: tuple[int, ...] = (1, 4, 32, 128)) -> Layers:
    """Conv-TasNet's encoder and one separator block per dilation in ``dilations``."""
    encoder = conv(batch, 1, c.basis, int(c.sample_rate * seconds), c.kernel, stride=c.stride)
    yield "encoder", encoder
    frames = out_length(encoder)
    yield "bottleneck", conv(batch, c.basis, c.bottleneck, frames, 1)
    yield "block_in", conv(batch, c.bottleneck, c.hidden, frames, 1)
    for dilation in dilations:
        yield f"depthwise_d{dilation}", conv(batch, c.hidden, c.hidden, frames, c.taps,
                                             padding=dilation * (c.taps - 1) // 2,
                                             dilation=dilation, groups=c.hidden)
    yield "block_out", conv(batch, c.hidden, c.bottleneck, frames, 1)
    yield "mask", conv(batch, c.bottleneck, 2 * c.basis, frames, 1)  # two sources


def hifigan_v1(batch: int, frames: int, c: HiFiGAN = HIFIGAN_V1) -> Layers:
    yield "conv_pre", conv(batch, c.mels, c.channels, frames, c.outer_kernel,
                           padding=c.outer_kernel // 2)
    length = frames
    for stage, up in enumerate(c.rates):
        channels = c.stage_channels(stage)
        length *= up
        for kernel in c.resblock_kernels:
            # the middle dilation has the shapes of the first and last between them
            for dilation in (c.dilations[0], c.dilations[-1]):
                yield (f"resblock_c{channels}_k{kernel}_d{dilation}",
                       conv(batch, channels, channels, length, kernel,
                            padding=dilation * (kernel - 1) // 2, dilation=dilation))
    yield "conv_post", conv(batch, c.stage_channels(len(c.rates) - 1), 1, length,
                            c.outer_kernel, padding=c.outer_kernel // 2)


def encodec_24khz(batch: int, seconds: float, c: Encodec = ENCODEC_24KHZ) -> Layers:
    length = int(c.sample_rate * seconds)
    side = (c.kernel - 1) // 2
    yield "conv_in", conv(batch, 1, c.filters, length, c.kernel, pre_padded=(side, side))
    channels, res_side = c.filters, (c.residual_kernel - 1) // 2
    for ratio in reversed(c.ratios):
        yield f"res_c{channels}_k{c.residual_kernel}", conv(
            batch, channels, channels // c.compress, length, c.residual_kernel,
            pre_padded=(res_side, res_side))
        yield f"res_c{channels}_k1", conv(batch, channels // c.compress, channels, length, 1)
        down = conv(batch, channels, 2 * channels, length, 2 * ratio, stride=ratio,
                    pre_padded=(ratio // 2, ratio - ratio // 2))
        yield f"down_{ratio}", down
        length, channels = out_length(down), 2 * channels
    yield "conv_out", conv(batch, channels, c.dimension, length, c.kernel,
                           pre_padded=(side, side))


def quartznet_5x5(batch: int, seconds: float) -> Layers:
    frames = int(100 * seconds)
    yield "c1_depthwise", conv(batch, 64, 64, frames, 33, stride=2, padding=16, groups=64)
    frames = (frames + 32 - 33) // 2 + 1
    yield "c1_pointwise", conv(batch, 64, 256, frames, 1)
    for channels_in, channels, kernel in ((256, 256, 33), (256, 256, 39), (256, 512, 51),
                                          (512, 512, 63), (512, 512, 75)):
        yield f"b_k{kernel}_depthwise", conv(batch, channels_in, channels_in, frames, kernel,
                                             padding=kernel // 2, groups=channels_in)
        yield f"b_k{kernel}_pointwise", conv(batch, channels_in, channels, frames, 1)
    yield "c2_depthwise", conv(batch, 512, 512, frames, 87, padding=86, dilation=2,
                               groups=512)
    yield "c3_pointwise", conv(batch, 512, 1024, frames, 1)


def mamba(batch: int, length: int, c: Mamba) -> Layers:
    yield f"causal_depthwise_{c.inner}", conv(batch, c.inner, c.inner, length, c.kernel,
                                              padding=c.kernel - 1, groups=c.inner)


def hyena(batch: int, length: int, width: int) -> Layers:
    # the implicit filter as long as the sequence, causal (the input left-padded by L - 1)
    yield f"long_conv_{width}", conv(batch, width, width, length, length,
                                     pre_padded=(length - 1, 0), groups=width)


def s4d(batch: int, length: int, width: int) -> Layers:
    yield f"ssm_kernel_{width}", conv(batch, width, width, length, length,
                                      pre_padded=(length - 1, 0), groups=width)


def tcn(batch: int, task: str) -> Layers:
    if task == "seq_mnist":
        cin, hidden, kernel, length, levels = 1, 25, 7, 784, 8
    else:  # polyphonic music (Nottingham)
        cin, hidden, kernel, length, levels = 88, 150, 5, 400, 4
    for level in range(levels):
        dilation = 2 ** level
        pad = (kernel - 1) * dilation
        if level in (0, 1, levels - 1):
            # padding (K - 1) * d on both sides, the extra outputs chomped afterwards
            yield (f"level{level}_conv1", conv(batch, cin if level == 0 else hidden, hidden,
                                               length, kernel, padding=pad,
                                               dilation=dilation))
            yield (f"level{level}_conv2", conv(batch, hidden, hidden, length, kernel,
                                               padding=pad, dilation=dilation))


def ecg_resnet(batch: int) -> Layers:
    length, channels = 256 * 30, 32  # 30 s at 256 Hz
    yield "stem", conv(batch, 1, channels, length, 16, padding="same")
    for block in range(16):
        stride = 2 if block % 2 == 1 else 1
        widened = 32 * 2 ** (block // 4)
        if block % 4 == 0 or stride == 2:
            s = conv(batch, channels, widened, length, 16, stride=stride,
                     padding="same" if stride == 1 else 0, pre_padded=(0, 0) if stride == 1
                     else (7, 8))
            yield f"block{block}", s
            length, channels = out_length(s), widened


def wavenet(batch: int, length: int, c: WaveNet = WAVENET) -> Layers:
    yield "causal_in", conv(batch, c.classes, c.residual, length, c.kernel,
                            pre_padded=(c.kernel - 1, 0))
    for dilation in (1, 8, 64, 512):
        yield f"dilated_d{dilation}", conv(batch, c.residual, c.gate, length, c.kernel,
                                           pre_padded=(dilation * (c.kernel - 1), 0),
                                           dilation=dilation)
    yield "residual_1x1", conv(batch, c.residual, c.residual, length, 1)
    yield "skip_1x1", conv(batch, c.residual, c.skip, length, 1)


def demucs_v2(batch: int, samples: int) -> Layers:
    length, cin = samples, 2
    for index, channels in enumerate((64, 128, 256, 512, 1024)):
        down = conv(batch, cin, channels, length, 8, stride=4)
        yield f"encoder{index}_down", down
        length = out_length(down)
        yield f"encoder{index}_glu", conv(batch, channels, 2 * channels, length, 1)
        cin = channels


def conformer_conv(batch: int, frames: int, width: int = CONFORMER_M.dim,
                   kernel: int = CONFORMER_M.kernel) -> Layers:
    """A Conformer convolution module's layers (Conformer-M's unless told)."""
    yield f"pointwise_glu_{width}", conv(batch, width, 2 * width, frames, 1)
    yield f"depthwise_{width}_k{kernel}", conv(batch, width, width, frames, kernel,
                                               padding=kernel // 2, groups=width)
    yield f"pointwise_out_{width}", conv(batch, width, width, frames, 1)


def melgan_discriminator(batch: int, samples: int) -> Layers:
    first = conv(batch, 1, 16, samples, 15, padding=7)
    yield "layer0", first
    length = out_length(first)
    for index, (cin, cout, groups) in enumerate(((16, 64, 4), (64, 256, 16), (256, 1024, 64),
                                                 (1024, 1024, 256)), start=1):
        s = conv(batch, cin, cout, length, 41, stride=4, padding=20, groups=groups)
        yield f"layer{index}_grouped", s
        length = out_length(s)
    yield "layer5", conv(batch, 1024, 1024, length, 5, padding=2)
    yield "output", conv(batch, 1024, 1, length, 3, padding=1)


def time_series_fcn(batch: int, length: int) -> Layers:
    yield "fcn_conv1", conv(batch, 1, 128, length, 8, padding="same")
    yield "fcn_conv2", conv(batch, 128, 256, length, 5, padding=2)
    yield "fcn_conv3", conv(batch, 256, 128, length, 3, padding=1)
    yield "resnet_conv1", conv(batch, 64, 64, length, 8, padding="same")
    yield "resnet_widen", conv(batch, 64, 128, length, 5, padding=2)


def text_cnn(batch: int, tokens: int) -> Layers:
    for kernel in (3, 4, 5):
        yield f"kim_k{kernel}", conv(batch, 300, 100, tokens, kernel)


def char_cnn(batch: int) -> Layers:
    first = conv(batch, 70, 256, 1014, 7)
    yield "conv1", first
    yield "conv2", conv(batch, 256, 256, out_length(first) // 3, 7)
    yield "conv3", conv(batch, 256, 256, 110, 3)


def eeg_filter_bank(batch: int, channels: int, taps: int) -> Layers:
    yield f"bandpass_{channels}ch_k{taps}", conv(batch, channels, channels, 2560, taps,
                                                 padding=taps // 2, groups=channels)


def radar_matched_filter(pulses: int, samples: int, taps: int) -> Layers:
    yield f"pulse_compression_k{taps}", conv(pulses, 1, 1, samples, taps)


def reverb(seconds: float, taps: int) -> Layers:
    yield f"stereo_reverb_k{taps}", conv(1, 2, 2, int(48000 * seconds), taps,
                                         pre_padded=(taps - 1, 0), groups=2)


def vocos(batch: int, frames: int, width: int = 512, kernel: int = 7) -> Layers:
    """Vocos' backbone: a K=7 embedding of 100 mel bins, then ConvNeXt blocks, each a
    depthwise K=7 conv (its pointwise layers are ``nn.Linear``)."""
    yield "embed", conv(batch, 100, width, frames, kernel, padding=kernel // 2)
    yield f"convnext_depthwise_k{kernel}", conv(batch, width, width, frames, kernel,
                                                padding=kernel // 2, groups=width)


def xvector_tdnn(batch: int, frames: int, features: int = 24) -> Layers:
    """The x-vector TDNN's frame layers: contexts [-2, 2], {-2, 0, 2} and {-3, 0, 3} as
    unpadded K=5, K=3 dilation 2 and K=3 dilation 3 convs, then two 1x1s."""
    length, cin = frames, features
    for index, (cout, kernel, dilation) in enumerate(((512, 5, 1), (512, 3, 2), (512, 3, 3),
                                                      (512, 1, 1), (1500, 1, 1)), start=1):
        s = conv(batch, cin, cout, length, kernel, dilation=dilation)
        yield f"frame{index}", s
        length, cin = out_length(s), cout
