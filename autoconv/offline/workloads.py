"""A suite of real conv1d workloads, as data.

Each :class:`Workload` is one ``F.conv1d`` call taken from a real model or DSP pipeline (audio
FIR filters and reverbs, speech front ends, Whisper's stem, many-channel mid-size kernels,
Hyena/S4-like long depthwise convolutions, Mamba's causal depthwise conv, dilated TCNs, strided
decimators, tiny many-batch calls), with the model's real dimensions. The suite is used by
``scripts/bench_strategies.py``, by ``autoconv warm`` to pre-tune a machine, and to evaluate the
predictor on shapes it was not trained on.

The suite is plain data: building tensors (:meth:`Workload.tensors`) is explicit, and a
workload's :class:`~autoconv.signature.Signature` is computed without allocating anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from autoconv.signature import Signature, resolve_padding
from autoconv.tuning.candidates import ConvInputs

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Workload:
    """One named ``F.conv1d`` call with the dimensions of the model it comes from.

    Attributes:
        name: unique identifier (``[a-z0-9_]``), used on command lines and in result tables.
        description: what the call computes, in a few words.
        source: the real model or pipeline the dimensions are taken from.
        input_shape: ``(batch, in_channels, length)``.
        weight_shape: ``(out_channels, in_channels // groups, kernel_size)``.
        stride, padding, dilation, groups: ``F.conv1d``'s arguments (padding may be
            ``'same'`` or ``'valid'``).
        bias: whether the call adds a bias.
        dtype: torch dtype name, e.g. ``"float32"``.
        quick: part of the quick subset (``--quick`` in the benchmarks).
        tags: categories, e.g. ``("audio", "single_channel")``.
    """

    name: str
    description: str
    source: str
    input_shape: Shape3
    weight_shape: Shape3
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = False
    dtype: str = "float32"
    quick: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The workload's dtype as a ``torch.dtype``."""
        dtype = getattr(torch, self.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"workload {self.name!r}: unknown dtype {self.dtype!r}")
        return dtype

    def conv_kwargs(self) -> dict[str, Any]:
        """``stride``, ``padding``, ``dilation`` and ``groups`` as keyword arguments."""
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}

    def tensors(self, device: str | torch.device = "cpu", seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Build ``(input, weight, bias)`` for this workload, deterministic in ``seed``.

        The input is standard normal; the weight is scaled by ``1/sqrt(fan_in)`` (as
        ``nn.Conv1d``'s initialisation) so that outputs stay of order one whatever the kernel
        size; ``bias`` is ``None`` unless the workload has one.
        """
        inputs = ConvInputs.random(self.signature(str(device)), torch.device(device),
                                   bias=self.bias, seed=seed)
        return inputs.input, inputs.weight, inputs.bias

    def signature(self, device: str = "cpu") -> Signature:
        """The :class:`Signature` of this call (computed from the shapes, allocates nothing)."""
        batch, channels, length = self.input_shape
        out_channels, _, kernel = self.weight_shape
        left, right = resolve_padding(self.padding, kernel, self.dilation, self.stride)
        return Signature(batch, channels, out_channels, length, kernel, self.stride, left, right,
                         self.dilation, self.groups, self.dtype, torch.device(device).type)

    @property
    def output_shape(self) -> Shape3:
        """Shape of ``F.conv1d``'s result."""
        sig = self.signature()
        return sig.batch, sig.out_channels, sig.output_length

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the direct convolution (a size measure)."""
        batch, out_channels, out_length = self.output_shape
        _, in_per_group, kernel = self.weight_shape
        return batch * out_channels * out_length * in_per_group * kernel

    def summary(self) -> str:
        """Compact shape string, e.g. ``4x64->64 L4096 K65 p32``."""
        batch, channels, length = self.input_shape
        out_channels, _, kernel = self.weight_shape
        parts = [f"{batch}x{channels}->{out_channels}", f"L{length}", f"K{kernel}"]
        for label, value, default in (("s", self.stride, 1), ("p", self.padding, 0),
                                      ("d", self.dilation, 1), ("g", self.groups, 1)):
            if value != default:
                parts.append(f"{label}{value}")
        if self.bias:
            parts.append("bias")
        if self.dtype != "float32":
            parts.append(self.dtype)
        return " ".join(parts)


def _wav2vec2_feature_encoder(batch: int = 2, samples: int = 32000) -> list[Workload]:
    """The 7 conv layers of wav2vec2 / HuBERT's feature encoder on 16 kHz audio."""
    kernels = (10, 3, 3, 3, 3, 2, 2)
    strides = (5, 2, 2, 2, 2, 2, 2)
    layers = []
    length, channels = samples, 1
    for index, (kernel, stride) in enumerate(zip(kernels, strides)):
        layers.append(Workload(
            name=f"wav2vec2_fe{index}",
            description=f"feature encoder conv {index}: {channels}->512 K{kernel} stride "
                        f"{stride} ({samples / 16000:g} s of 16 kHz audio)",
            source="wav2vec2 / HuBERT base (facebook/wav2vec2-base)",
            input_shape=(batch, channels, length), weight_shape=(512, channels, kernel),
            stride=stride, quick=index in (0, 1), tags=("speech", "strided")))
        length = (length - kernel) // stride + 1
        channels = 512
    return layers


def _dilated_tcn() -> list[Workload]:
    """WaveNet (K=2, no padding) and TCN (K=3, causal padding) dilated layers."""
    wavenet = [Workload(
        name=f"wavenet_k2_d{d}",
        description=f"WaveNet gated dilated conv, 64 residual -> 128 (filter+gate), dilation {d}",
        source="WaveNet (van den Oord et al. 2016), 1 s of 16 kHz audio",
        input_shape=(4, 64, 16000), weight_shape=(128, 64, 2), dilation=d, bias=True,
        quick=d == 512, tags=("dilated", "tcn")) for d in (1, 64, 512)]
    tcn = [Workload(
        name=f"tcn_k3_d{d}",
        description=f"TCN residual block conv, 128 channels, dilation {d}, causal padding",
        source="TCN (Bai et al. 2018), sequence modelling benchmark sizes",
        input_shape=(16, 128, 1024), weight_shape=(128, 128, 3), padding=2 * d, dilation=d,
        bias=True, tags=("dilated", "tcn")) for d in (4, 64)]
    convtasnet = Workload(
        name="convtasnet_dw_d128",
        description="Conv-TasNet separator depthwise conv, 512 channels, dilation 128",
        source="Conv-TasNet (Luo & Mesgarani 2019), 4 s of 8 kHz audio after the encoder",
        input_shape=(4, 512, 3999), weight_shape=(512, 1, 3), padding=128, dilation=128,
        groups=512, bias=True, tags=("dilated", "depthwise"))
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
        Workload(
            name="sincnet_k251",
            description="SincNet band-pass filter bank: 1 -> 80 filters, 251 taps, "
                        "200 ms chunks",
            source="SincNet (Ravanelli & Bengio 2018)",
            input_shape=(128, 1, 3200), weight_shape=(80, 1, 251),
            tags=("audio", "speech", "long_kernel")),
    ]
    speech = [
        *_wav2vec2_feature_encoder(),
        Workload(
            name="wav2vec2_pos_conv",
            description="positional convolution: 768 ch, K=128, groups=16, padding 64 "
                        "(10 s of audio = 499 frames)",
            source="wav2vec2 base (facebook/wav2vec2-base)",
            input_shape=(2, 768, 499), weight_shape=(768, 48, 128), padding=64, groups=16,
            bias=True, quick=True, tags=("speech", "grouped", "long_kernel")),
        Workload(
            name="whisper_stem_conv1",
            description="Whisper encoder conv1: 80 mel bins -> 512, K=3, padding 1, 30 s",
            source="Whisper base (openai/whisper-base)",
            input_shape=(4, 80, 3000), weight_shape=(512, 80, 3), padding=1, bias=True,
            quick=True, tags=("speech", "short_kernel")),
        Workload(
            name="whisper_stem_conv2",
            description="Whisper encoder conv2: 512 -> 512, K=3, stride 2, padding 1",
            source="Whisper base (openai/whisper-base)",
            input_shape=(4, 512, 3000), weight_shape=(512, 512, 3), stride=2, padding=1,
            bias=True, tags=("speech", "short_kernel", "strided")),
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
        Workload(
            name="conformer_dw_k31",
            description="Conformer convolution module: depthwise, K=31, 'same' padding, "
                        "d_model 256, 20 s of speech at 40 ms frames",
            source="Conformer (Gulati et al. 2020), Conformer-M; torchaudio's Conformer",
            input_shape=(8, 256, 500), weight_shape=(256, 1, 31), padding=15, groups=256,
            tags=("speech", "depthwise")),
        Workload(
            name="mamba_causal_dw_k4",
            description="Mamba's causal depthwise conv: d_inner 1536, K=4, padding 3, bias",
            source="Mamba-130m (state-spaces/mamba-130m), sequence 2048",
            input_shape=(4, 1536, 2048), weight_shape=(1536, 1, 4), padding=3, groups=1536,
            bias=True, quick=True, tags=("depthwise", "short_kernel")),
    ]
    decimators = [
        Workload(
            name="decimate_k64_s4",
            description="anti-aliased 4x decimation: 64-tap low-pass FIR with stride 4",
            source="audio resampling 48 kHz -> 12 kHz (polyphase-free FIR decimator)",
            input_shape=(8, 1, 48000), weight_shape=(1, 1, 64), stride=4, padding=32,
            tags=("audio", "single_channel", "strided")),
        Workload(
            name="convtasnet_encoder",
            description="Conv-TasNet encoder: 1 -> 512 basis filters, K=16, stride 8",
            source="Conv-TasNet (Luo & Mesgarani 2019), 4 s of 8 kHz audio",
            input_shape=(4, 1, 32000), weight_shape=(512, 1, 16), stride=8, tags=("strided",)),
        Workload(
            name="encodec_down_s2",
            description="EnCodec / SEANet encoder downsampling conv: 32 -> 64, K=4, stride 2",
            source="EnCodec 24 kHz (facebook/encodec_24khz), 1 s of audio",
            input_shape=(4, 32, 24000), weight_shape=(64, 32, 4), stride=2, padding=1,
            bias=True, tags=("strided",)),
    ]
    tiny = [Workload(
        name="tiny_many_batch",
        description="many tiny independent calls batched: B=256, 1 channel, L=64, K=16",
        source="per-frame FIR filtering of short windows (e.g. feature extraction)",
        input_shape=(256, 1, 64), weight_shape=(1, 1, 16), quick=True,
        tags=("tiny", "single_channel"))]
    return (*audio, *speech, *many_channel, *long_conv, *_dilated_tcn(), *decimators, *tiny)


#: The whole suite, in reporting order.
SUITE: tuple[Workload, ...] = _build_suite()

_BY_NAME: dict[str, Workload] = {w.name: w for w in SUITE}


def names() -> list[str]:
    """Names of all workloads, in suite order."""
    return [w.name for w in SUITE]


def get(name: str) -> Workload:
    """The workload called ``name``.

    Raises:
        KeyError: no such workload (the message lists the known names).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(_BY_NAME)}") from None


def select(only: list[str] | None = None, quick: bool = False) -> list[Workload]:
    """Workloads by name (``only``, in the given order), the quick subset, or the whole suite.

    Raises:
        KeyError: a name in ``only`` is not a workload.
    """
    if only:
        return [get(name) for name in only]
    return [w for w in SUITE if w.quick] if quick else list(SUITE)
