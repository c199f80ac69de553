"""The held-out benchmark of real layers: conv1d signatures from published architectures.

These layers are never part of the training grid (``autoconv.prediction.grid``): the
predictor's benchmark (``scripts/bench_real_layers.py``) trains on the grid alone and asks it
about these. Each architecture's layers come from its published configuration (channels,
kernels, strides, dilations, groups, padding), at a few batch sizes and input lengths typical
of training or inference, and each layer's input length follows from the layers before it
(strides, padding). Repeated layers (a block used N times) appear once per distinct shape.

Sources, one line each (the configuration, not any weights): wav2vec 2.0 base (Baevski et
al. 2020); Whisper tiny/base/small encoder stems (Radford et al. 2022); SincNet (Ravanelli &
Bengio 2018); Conv-TasNet (Luo & Mesgarani 2019, N=512 L=16 B=128 H=512 P=3 X=8); HiFi-GAN
V1 (Kong et al. 2020); EnCodec 24 kHz SEANet encoder (Défossez et al. 2022); QuartzNet 5x5
(Kriman et al. 2020); Mamba-130m and -370m (Gu & Dao 2023); Hyena (Poli et al. 2023) and
S4D (Gu et al. 2022) long convolutions computed as explicit kernels; TCN (Bai et al. 2018,
sequential MNIST and polyphonic music); the ECG ResNet of Hannun et al. 2019; WaveNet (van
den Oord et al. 2016, 64 residual / 128 gate channels); Demucs v2 (Défossez et al. 2019);
the Conformer convolution module (Gulati et al. 2020, d=256 K=31 and d=512 K=15); MelGAN's
discriminator (Kumar et al. 2019, grouped); the FCN and ResNet baselines for time series
(Wang et al. 2017); Kim's text CNN (2014) and the character CNN of Zhang et al. (2015);
EEG band-pass FIR banks and radar pulse compression (matched filters) as used in
biosignal and radar processing; stereo reverbs (room impulse responses at 48 kHz).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from autoconv.signature import Signature
from autoconv.tuning.cost_model import direct_macs

#: Largest direct multiply-add count measured (a layer beyond it would take minutes to time
#: with ``F.conv1d``); such variants are left out of the table, never silently shortened.
MAX_DIRECT_MACS = 1 << 34


@dataclass(frozen=True)
class RealLayer:
    """One conv1d call of a published architecture.

    Attributes:
        architecture: the model it comes from (the unit of leave-one-architecture-out).
        layer: which layer, in the model's own terms.
        signature: the call (float32, CPU, no gradients).
    """

    architecture: str
    layer: str
    signature: Signature


def conv(batch: int, cin: int, cout: int, length: int, kernel: int, *, stride: int = 1,
         padding: int | str = 0, dilation: int = 1, groups: int = 1,
         pre_padded: tuple[int, int] = (0, 0)) -> Signature:
    """The signature of ``F.conv1d`` on a (batch, cin, length) input.

    Args:
        padding: ``F.conv1d``'s own padding (an int, or ``'same'``).
        pre_padded: samples the model pads the input with first (``F.pad``: causal and
            reflect padding), which the convolution then sees as input.
    """
    span = dilation * (kernel - 1) + 1
    if padding == "same":
        left, right = (span - 1) // 2, span - 1 - (span - 1) // 2
    else:
        left = right = int(padding)
    return Signature(batch, cin, cout, length + sum(pre_padded), kernel, stride, left, right,
                     dilation, groups, "float32", "cpu", False)


def out_length(s: Signature) -> int:
    """The output length of ``s`` (the next layer's input length)."""
    return s.output_length


Layers = Iterator[tuple[str, Signature]]


def wav2vec2_base(batch: int, seconds: float) -> Layers:
    length = int(16000 * seconds)
    cin = 1
    for index, (kernel, stride) in enumerate(zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))):
        s = conv(batch, cin, 512, length, kernel, stride=stride)
        yield f"feature_encoder_{index}", s
        length, cin = out_length(s), 512
    yield "positional_conv", conv(batch, 768, 768, length, 128, padding=64, groups=16)


def whisper(batch: int, width: int) -> Layers:
    yield "conv1", conv(batch, 80, width, 3000, 3, padding=1)
    yield "conv2", conv(batch, width, width, 3000, 3, stride=2, padding=1)


def sincnet(batch: int, samples: int) -> Layers:
    first = conv(batch, 1, 80, samples, 251)
    yield "sinc_filters", first
    length = out_length(first) // 3  # max-pool 3
    second = conv(batch, 80, 60, length, 5)
    yield "conv2", second
    yield "conv3", conv(batch, 60, 60, out_length(second) // 3, 5)


def conv_tasnet(batch: int, seconds: float) -> Layers:
    encoder = conv(batch, 1, 512, int(8000 * seconds), 16, stride=8)
    yield "encoder", encoder
    frames = out_length(encoder)
    yield "bottleneck", conv(batch, 512, 128, frames, 1)
    yield "block_in", conv(batch, 128, 512, frames, 1)
    for dilation in (1, 4, 32, 128):
        yield f"depthwise_d{dilation}", conv(batch, 512, 512, frames, 3, padding=dilation,
                                             dilation=dilation, groups=512)
    yield "block_out", conv(batch, 512, 128, frames, 1)
    yield "mask", conv(batch, 128, 1024, frames, 1)


def hifigan_v1(batch: int, frames: int) -> Layers:
    yield "conv_pre", conv(batch, 80, 512, frames, 7, padding=3)
    length = frames
    for channels, up in ((256, 8), (128, 8), (64, 2), (32, 2)):
        length *= up
        for kernel in (3, 7, 11):
            for dilation in (1, 5):  # (3 has the shapes of 1 and 5 between them)
                yield (f"resblock_c{channels}_k{kernel}_d{dilation}",
                       conv(batch, channels, channels, length, kernel,
                            padding=dilation * (kernel - 1) // 2, dilation=dilation))
    yield "conv_post", conv(batch, 32, 1, length, 7, padding=3)


def encodec_24khz(batch: int, seconds: float) -> Layers:
    length = int(24000 * seconds)
    yield "conv_in", conv(batch, 1, 32, length, 7, pre_padded=(3, 3))
    channels = 32
    for ratio in (2, 4, 5, 8):
        yield f"res_c{channels}_k3", conv(batch, channels, channels // 2, length, 3,
                                          pre_padded=(1, 1))
        yield f"res_c{channels}_k1", conv(batch, channels // 2, channels, length, 1)
        down = conv(batch, channels, 2 * channels, length, 2 * ratio, stride=ratio,
                    pre_padded=(ratio // 2, ratio - ratio // 2))
        yield f"down_{ratio}", down
        length, channels = out_length(down), 2 * channels
    yield "conv_out", conv(batch, channels, 128, length, 7, pre_padded=(3, 3))


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


def mamba(batch: int, length: int, inner: int) -> Layers:
    yield f"causal_depthwise_{inner}", conv(batch, inner, inner, length, 4, padding=3,
                                            groups=inner)


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


def wavenet(batch: int, length: int) -> Layers:
    yield "causal_in", conv(batch, 256, 64, length, 2, pre_padded=(1, 0))
    for dilation in (1, 8, 64, 512):
        yield f"dilated_d{dilation}", conv(batch, 64, 128, length, 2,
                                           pre_padded=(dilation, 0), dilation=dilation)
    yield "residual_1x1", conv(batch, 64, 64, length, 1)
    yield "skip_1x1", conv(batch, 64, 256, length, 1)


def demucs_v2(batch: int, samples: int) -> Layers:
    length, cin = samples, 2
    for index, channels in enumerate((64, 128, 256, 512, 1024)):
        down = conv(batch, cin, channels, length, 8, stride=4)
        yield f"encoder{index}_down", down
        length = out_length(down)
        yield f"encoder{index}_glu", conv(batch, channels, 2 * channels, length, 1)
        cin = channels


def conformer_conv(batch: int, frames: int, width: int, kernel: int) -> Layers:
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


#: Each architecture's layer generators, bound to the sizes they run at.
ARCHITECTURES: dict[str, list[Callable[[], Layers]]] = {
    "wav2vec2_base": [partial(wav2vec2_base, b, t) for b, t in ((1, 2.0), (4, 5.0), (8, 15.6))],
    "whisper": [partial(whisper, b, w) for b, w in ((1, 384), (4, 512), (8, 768))],
    "sincnet": [partial(sincnet, b, n) for b, n in ((32, 3200), (128, 3200))],
    "conv_tasnet": [partial(conv_tasnet, b, t) for b, t in ((1, 4.0), (4, 4.0))],
    "hifigan_v1": [partial(hifigan_v1, b, f) for b, f in ((1, 32), (8, 32))],
    "encodec_24khz": [partial(encodec_24khz, b, t) for b, t in ((1, 1.0), (8, 1.0))],
    "quartznet_5x5": [partial(quartznet_5x5, b, t) for b, t in ((1, 10.0), (16, 10.0))],
    "mamba": [partial(mamba, b, n, d)
              for b, n, d in ((1, 2048, 1536), (8, 1024, 1536), (1, 4096, 2048))],
    "hyena": [partial(hyena, b, n, d)
              for b, n, d in ((1, 1024, 768), (4, 2048, 768), (1, 8192, 256))],
    "s4d": [partial(s4d, b, n, d) for b, n, d in ((16, 1024, 128), (4, 4096, 256))],
    "tcn": [partial(tcn, 32, "seq_mnist"), partial(tcn, 8, "music")],
    "ecg_resnet": [partial(ecg_resnet, b) for b in (1, 32)],
    "wavenet": [partial(wavenet, b, n) for b, n in ((1, 16000), (4, 8000))],
    "demucs_v2": [partial(demucs_v2, 1, 88200)],
    "conformer": [partial(conformer_conv, 8, 500, 256, 31),
                  partial(conformer_conv, 4, 1000, 512, 15)],
    "melgan_discriminator": [partial(melgan_discriminator, b, 8192) for b in (1, 16)],
    "time_series": [partial(time_series_fcn, b, n) for b, n in ((16, 500), (64, 1024))],
    "text_cnn": [partial(text_cnn, 50, 64), partial(text_cnn, 50, 400),
                 partial(char_cnn, 128)],
    "eeg_filters": [partial(eeg_filter_bank, b, c, k) for b, c, k in ((16, 64, 257),
                                                                    (4, 128, 129))],
    "radar": [partial(radar_matched_filter, p, n, k) for p, n, k in ((64, 16384, 1000),
                                                                   (16, 65536, 4096))],
    "reverb": [partial(reverb, t, k) for t, k in ((1.0, 8191), (2.0, 24000), (1.0, 48000))],
}


def real_layers() -> list[RealLayer]:
    """Every distinct layer of :data:`ARCHITECTURES` (the first name of a repeated shape
    kept), leaving out the few whose direct convolution exceeds :data:`MAX_DIRECT_MACS`."""
    seen: set[Signature] = set()
    table = []
    for architecture, runs in ARCHITECTURES.items():
        for layers in runs:
            for layer, signature in layers():
                if signature in seen or direct_macs(signature) > MAX_DIRECT_MACS:
                    continue
                seen.add(signature)
                table.append(RealLayer(architecture, layer, signature))
    return table
