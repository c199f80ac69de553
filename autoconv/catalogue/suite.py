"""The suite: real conv1d workloads that ``autoconv warm --suite`` pre-tunes and the benchmarks
run.

Each :class:`~autoconv.catalogue.workload.Workload` is one ``F.conv1d`` call taken from a real
model or DSP pipeline (audio FIR filters and reverbs, speech front ends, Whisper's stem,
many-channel mid-size kernels, Hyena/S4-like long depthwise convolutions, Mamba's causal
depthwise conv, dilated TCNs, strided decimators, tiny many-batch calls), with the model's
real dimensions. The layers of a model in :mod:`~autoconv.catalogue.architectures` are taken
from there; the rest (DSP pipelines, a padding variant of a model's layer) are written here.
The suite is used by ``scripts/bench_strategies.py`` and the other suite benchmarks, by
``autoconv warm --suite`` to pre-tune a machine, and to evaluate the predictor on shapes it
was not trained on.
"""

from __future__ import annotations

from autoconv.catalogue import architectures as a
from autoconv.catalogue.configs import (
    CONV_TASNET,
    ENCODEC_24KHZ,
    MAMBA_130M,
    WAV2VEC2_BASE,
    WAVENET,
    WHISPER,
)
from autoconv.catalogue.workload import Workload, choose, find

_WAV2VEC2 = "wav2vec2 / HuBERT base (facebook/wav2vec2-base)"
_WHISPER = "Whisper base (openai/whisper-base)"


def _wav2vec2() -> list[Workload]:
    """The 7 conv layers of the feature encoder on 2 s of 16 kHz audio, and the positional
    conv on 10 s."""
    c = WAV2VEC2_BASE
    encoder = [Workload.of(
        f"wav2vec2_fe{index}", signature,
        description=f"feature encoder conv {index}: {signature.in_channels}->{c.channels} "
                    f"K{signature.kernel_size} stride {signature.stride} (2 s of 16 kHz audio)",
        source=_WAV2VEC2, quick=index in (0, 1), tags=("speech", "strided"))
        for index, (_, signature) in enumerate(list(a.wav2vec2_base(2, 2.0))[:-1])]
    positional = Workload.of(
        "wav2vec2_pos_conv", a.layer(a.wav2vec2_base(2, 10.0), "positional_conv"),
        description="positional convolution: 768 ch, K=128, groups=16, padding 64 "
                    "(10 s of audio = 499 frames)",
        source="wav2vec2 base (facebook/wav2vec2-base)", bias=True, quick=True,
        tags=("speech", "grouped", "long_kernel"))
    return [*encoder, positional]


def _whisper() -> list[Workload]:
    stem = dict(a.whisper(4, WHISPER.base))
    return [
        Workload.of("whisper_stem_conv1", stem["conv1"],
                    description="Whisper encoder conv1: 80 mel bins -> 512, K=3, padding 1, 30 s",
                    source=_WHISPER, bias=True, quick=True, tags=("speech", "short_kernel")),
        Workload.of("whisper_stem_conv2", stem["conv2"],
                    description="Whisper encoder conv2: 512 -> 512, K=3, stride 2, padding 1",
                    source=_WHISPER, bias=True, tags=("speech", "short_kernel", "strided")),
    ]


def _dilated_tcn(tasnet: dict) -> list[Workload]:
    """WaveNet (K=2, no padding), TCN (K=3, causal padding) and Conv-TasNet dilated layers."""
    w = WAVENET
    wavenet = [Workload(
        name=f"wavenet_k2_d{d}",
        description=f"WaveNet gated dilated conv, {w.residual} residual -> {w.gate} "
                    f"(filter+gate), dilation {d}",
        source="WaveNet (van den Oord et al. 2016), 1 s of 16 kHz audio",
        input_shape=(4, w.residual, 16000), weight_shape=(w.gate, w.residual, w.kernel),
        dilation=d, bias=True, quick=d == 512, tags=("dilated", "tcn")) for d in (1, 64, 512)]
    tcn = [Workload(
        name=f"tcn_k3_d{d}",
        description=f"TCN residual block conv, 128 channels, dilation {d}, causal padding",
        source="TCN (Bai et al. 2018), sequence modelling benchmark sizes",
        input_shape=(16, 128, 1024), weight_shape=(128, 128, 3), padding=2 * d, dilation=d,
        bias=True, tags=("dilated", "tcn")) for d in (4, 64)]
    convtasnet = Workload.of(
        "convtasnet_dw_d128", tasnet["depthwise_d128"],
        description="Conv-TasNet separator depthwise conv, 512 channels, dilation 128",
        source="Conv-TasNet (Luo & Mesgarani 2019), 4 s of 8 kHz audio after the encoder",
        bias=True, tags=("dilated", "depthwise"))
    return [*wavenet, *tcn, convtasnet]


def _build_suite() -> tuple[Workload, ...]:
    audio = [
        Workload(
            name="audio_fir_k1023",
            description="FIR filter (e.g. band-pass / EQ), 1023 taps, 1 s at 16 kHz",
            source="audio DSP: torchaudio / julius FIR filtering of speech batches",
            input_shape=(8, 1, 16000), weight_shape=(1, 1, 1023), padding=511, quick=True,
            tags=("audio", "single_channel", "long_kernel")),
        Workload(
            name="long_reverb_k8191",
            description="convolution reverb, 8191-tap impulse response, 2 s at 48 kHz, "
                        "full output (with the tail)",
            source="audio DSP: room-impulse-response augmentation (torchaudio.functional."
                   "fftconvolve use case)",
            input_shape=(2, 1, 96000), weight_shape=(1, 1, 8191), padding=8190,
            tags=("audio", "single_channel", "long_kernel")),
        Workload.of(
            "sincnet_k251", a.layer(a.sincnet(128, 3200), "sinc_filters"),
            description="SincNet band-pass filter bank: 1 -> 80 filters, 251 taps, "
                        "200 ms chunks",
            source="SincNet (Ravanelli & Bengio 2018)",
            tags=("audio", "speech", "long_kernel")),
    ]
    many_channel = [Workload(
        name=f"many_channel_k{k}",
        description=f"64 -> 64 channels, {k}-tap kernel, 'same'-size output",
        source="mid-size-kernel conv stacks (e.g. ConvNeXt-1D / large-kernel audio CNNs)",
        input_shape=(4, 64, 4096), weight_shape=(64, 64, k), padding=k // 2,
        quick=k == 65, tags=("many_channel", "long_kernel")) for k in (65, 511)]
    long_conv = [
        Workload(
            name="depthwise_long_k2048",
            description="Hyena / S4-style implicit long conv: depthwise, kernel as long as "
                        "the sequence, full (causal) padding",
            source="Hyena (Poli et al. 2023) / S4D long convolution, d_model 256, L 2048",
            input_shape=(4, 256, 2048), weight_shape=(256, 1, 2048), padding=2047,
            groups=256, tags=("depthwise", "long_kernel")),
        Workload.of(
            "conformer_dw_k31", a.layer(a.conformer_conv(8, 500, 256, 31), "depthwise_256_k31"),
            description="Conformer convolution module: depthwise, K=31, 'same' padding, "
                        "d_model 256, 20 s of speech at 40 ms frames",
            source="Conformer (Gulati et al. 2020), Conformer-M; torchaudio's Conformer",
            tags=("speech", "depthwise")),
        Workload.of(
            "mamba_causal_dw_k4",
            a.layer(a.mamba(4, 2048, MAMBA_130M), f"causal_depthwise_{MAMBA_130M.inner}"),
            description="Mamba's causal depthwise conv: d_inner 1536, K=4, padding 3, bias",
            source="Mamba-130m (state-spaces/mamba-130m), sequence 2048", bias=True,
            quick=True, tags=("depthwise", "short_kernel")),
    ]
    tasnet = dict(a.conv_tasnet(4, 4.0))
    first_ratio = ENCODEC_24KHZ.ratios[-1]  # the encoder's first downsampling
    filters = ENCODEC_24KHZ.filters
    decimators = [
        Workload(
            name="decimate_k64_s4",
            description="anti-aliased 4x decimation: 64-tap low-pass FIR with stride 4",
            source="audio resampling 48 kHz -> 12 kHz (polyphase-free FIR decimator)",
            input_shape=(8, 1, 48000), weight_shape=(1, 1, 64), stride=4, padding=32,
            tags=("audio", "single_channel", "strided")),
        Workload.of(
            "convtasnet_encoder", tasnet["encoder"],
            description=f"Conv-TasNet encoder: 1 -> {CONV_TASNET.basis} basis filters, "
                        f"K={CONV_TASNET.kernel}, stride {CONV_TASNET.stride}",
            source="Conv-TasNet (Luo & Mesgarani 2019), 4 s of 8 kHz audio", tags=("strided",)),
        Workload(
            name="encodec_down_s2",
            description=f"EnCodec / SEANet encoder downsampling conv: {filters} -> "
                        f"{2 * filters}, K={2 * first_ratio}, stride {first_ratio}",
            source="EnCodec 24 kHz (facebook/encodec_24khz), 1 s of audio",
            input_shape=(4, filters, 24000), weight_shape=(2 * filters, filters, 2 * first_ratio),
            stride=first_ratio, padding=1, bias=True, tags=("strided",)),
    ]
    tiny = [Workload(
        name="tiny_many_batch",
        description="many tiny independent calls batched: B=256, 1 channel, L=64, K=16",
        source="per-frame FIR filtering of short windows (e.g. feature extraction)",
        input_shape=(256, 1, 64), weight_shape=(1, 1, 16), quick=True,
        tags=("tiny", "single_channel"))]
    return (*audio, *_wav2vec2(), *_whisper(), *many_channel, *long_conv,
            *_dilated_tcn(tasnet), *decimators, *tiny)


#: The whole suite, in reporting order.
SUITE: tuple[Workload, ...] = _build_suite()


def names() -> list[str]:
    """Names of all workloads, in suite order."""
    return [w.name for w in SUITE]


def get(name: str) -> Workload:
    """The workload called ``name``.

    Raises:
        KeyError: no such workload (the message lists the known names).
    """
    return find(SUITE, name)


def select(only: list[str] | None = None, quick: bool = False) -> list[Workload]:
    """Workloads by name (``only``, in the given order), the quick subset, or the whole suite.

    Raises:
        KeyError: a name in ``only`` is not a workload.
    """
    return choose(SUITE, only, quick)
