"""Ordinary layers: the short- and mid-kernel conv1d calls most models are made of.

Where the suite leans on the calls where the strategies differ most (long kernels), these are
the layers a speech, audio or sequence model spends its time in: strided front ends, dilated
and undilated depthwise convs of K=3 to 33, dense K=3 to 7 convs, pointwise convs. The speed
benchmark ``scripts/bench_layers.py`` times autoconv's pick on each against ``F.conv1d`` and
against the machine's floor. Each is a layer of :mod:`~autoconv.catalogue.architectures` at a
size the model runs at; the ``quick`` ones are small enough for a smoke run.
"""

from __future__ import annotations

from autoconv.catalogue import architectures as a
from autoconv.catalogue.configs import CONV_TASNET_H256, MAMBA_130M, WHISPER
from autoconv.catalogue.workload import Workload, choose


def _pick(name: str, layers: a.Layers, layer: str, source: str, *, bias: bool = False,
          quick: bool = False, tags: tuple[str, ...] = ()) -> Workload:
    signature = a.layer(layers, layer)
    return Workload.of(name, signature, description=f"{source}: {layer}", source=source,
                       bias=bias, quick=quick, tags=tags)


def _build() -> tuple[Workload, ...]:
    tasnet = "Conv-TasNet, 4 s of 8 kHz audio"
    return (
        _pick("wav2vec2_fe0", a.wav2vec2_base(4, 1.0), "feature_encoder_0",
              "wav2vec2 / HuBERT / WavLM base, 1 s of 16 kHz audio", tags=("strided",)),
        _pick("wav2vec2_fe1", a.wav2vec2_base(4, 1.0), "feature_encoder_1",
              "wav2vec2 / HuBERT / WavLM base, 1 s of 16 kHz audio", tags=("dense", "strided")),
        _pick("convtasnet_dw_d32", a.conv_tasnet(4, 4.0), "depthwise_d32", tasnet,
              tags=("depthwise", "dilated")),
        _pick("convtasnet_dw_d1", a.conv_tasnet(4, 4.0), "depthwise_d1", tasnet,
              tags=("depthwise",)),
        _pick("tcn_dw_d64", a.conv_tasnet(4, 8.0, CONV_TASNET_H256, dilations=(64,)),
              "depthwise_d64", "depthwise TCN (Conv-TasNet separator, H=256), 8 s at 8 kHz",
              tags=("depthwise", "dilated")),
        _pick("convtasnet_pointwise", a.conv_tasnet(4, 4.0), "block_in", tasnet,
              tags=("pointwise",)),
        _pick("mamba_dw_k4", a.mamba(1, 2048, MAMBA_130M),
              f"causal_depthwise_{MAMBA_130M.inner}", "Mamba-130m, sequence 2048", bias=True,
              tags=("depthwise",)),
        _pick("convnext_dw_k7", a.vocos(4, 938), "convnext_depthwise_k7",
              "Vocos ConvNeXt block, 10 s at 24 kHz (hop 256)", tags=("depthwise",)),
        _pick("fastconformer_dw_k9", a.conformer_conv(8, 250, 512, 9), "depthwise_512_k9",
              "FastConformer-L convolution module, 20 s at 80 ms frames", quick=True,
              tags=("depthwise",)),
        _pick("conformer_dw_k15", a.conformer_conv(4, 1000, 512, 15), "depthwise_512_k15",
              "Conformer (d=512) convolution module, 40 s at 40 ms frames",
              tags=("depthwise",)),
        _pick("conformer_dw_k31", a.conformer_conv(8, 500, 256, 31), "depthwise_256_k31",
              "Conformer-M convolution module, 20 s at 40 ms frames", quick=True,
              tags=("depthwise",)),
        _pick("quartznet_dw_k33", a.quartznet_5x5(16, 10.0), "b_k33_depthwise",
              "QuartzNet 5x5, 10 s at 10 ms frames", tags=("depthwise",)),
        _pick("hifigan_k11", a.hifigan_v1(8, 32), "resblock_c128_k11_d1",
              "HiFi-GAN V1 residual block, 32 mel frames", tags=("dense",)),
        _pick("hifigan_k7", a.hifigan_v1(8, 32), "resblock_c256_k7_d1",
              "HiFi-GAN V1 residual block, 32 mel frames", tags=("dense",)),
        _pick("xvector_k3_d2", a.xvector_tdnn(16, 200), "frame2",
              "x-vector TDNN, 2 s at 10 ms frames", tags=("dense", "dilated")),
        _pick("whisper_tiny_conv2", a.whisper(1, WHISPER.tiny), "conv2",
              "Whisper tiny encoder stem, 30 s", tags=("dense", "strided")),
        _pick("whisper_base_conv2", a.whisper(4, WHISPER.base), "conv2",
              "Whisper base encoder stem, 30 s", tags=("dense", "strided")),
        _pick("encodec_res_k3", a.encodec_24khz(8, 1.0), "res_c32_k3",
              "EnCodec 24 kHz encoder residual unit, 1 s", tags=("dense",)),
        _pick("encodec_down_k8", a.encodec_24khz(8, 1.0), "down_4",
              "EnCodec 24 kHz encoder downsampling, 1 s", tags=("dense", "strided")),
        _pick("wavenet_d8", a.wavenet(4, 8000), "dilated_d8",
              "WaveNet gated dilated conv, 0.5 s at 16 kHz", tags=("dense", "dilated")),
        _pick("fcn_k5", a.time_series_fcn(16, 500), "fcn_conv2",
              "time-series FCN (Wang et al. 2017)", tags=("dense",)),
    )


#: The ordinary layers, front ends first.
ORDINARY: tuple[Workload, ...] = _build()


def select(only: list[str] | None = None, quick: bool = False) -> list[Workload]:
    """Ordinary layers by name (``only``, in the given order), the quick ones, or all.

    Raises:
        KeyError: a name in ``only`` is not an ordinary layer (the message lists them).
    """
    return choose(ORDINARY, only, quick)
