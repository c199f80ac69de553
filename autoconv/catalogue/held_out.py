"""The held-out set of real layers: every architecture's layers at sizes people run them at.

These layers are never part of the training grid (:mod:`autoconv.prediction.grid`): the
predictor's benchmark (``scripts/bench_real_layers.py``) trains on the grid alone and asks it
about these. :data:`ARCHITECTURES` binds each generator of
:mod:`~autoconv.catalogue.architectures` to a few batch sizes and input lengths typical of
training or inference; :func:`real_layers` lists their distinct layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from autoconv.catalogue import architectures as a
from autoconv.catalogue.configs import MAMBA_130M, MAMBA_370M
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


#: Each architecture's layer generators, bound to the sizes they run at.
ARCHITECTURES: dict[str, list[Callable[[], a.Layers]]] = {
    "wav2vec2_base": [partial(a.wav2vec2_base, b, t)
                      for b, t in ((1, 2.0), (4, 5.0), (8, 15.6))],
    "whisper": [partial(a.whisper, b, w) for b, w in ((1, 384), (4, 512), (8, 768))],
    "sincnet": [partial(a.sincnet, b, n) for b, n in ((32, 3200), (128, 3200))],
    "conv_tasnet": [partial(a.conv_tasnet, b, t) for b, t in ((1, 4.0), (4, 4.0))],
    "hifigan_v1": [partial(a.hifigan_v1, b, f) for b, f in ((1, 32), (8, 32))],
    "encodec_24khz": [partial(a.encodec_24khz, b, t) for b, t in ((1, 1.0), (8, 1.0))],
    "quartznet_5x5": [partial(a.quartznet_5x5, b, t) for b, t in ((1, 10.0), (16, 10.0))],
    "mamba": [partial(a.mamba, b, n, c)
              for b, n, c in ((1, 2048, MAMBA_130M), (8, 1024, MAMBA_130M),
                              (1, 4096, MAMBA_370M))],
    "hyena": [partial(a.hyena, b, n, d)
              for b, n, d in ((1, 1024, 768), (4, 2048, 768), (1, 8192, 256))],
    "s4d": [partial(a.s4d, b, n, d) for b, n, d in ((16, 1024, 128), (4, 4096, 256))],
    "tcn": [partial(a.tcn, 32, "seq_mnist"), partial(a.tcn, 8, "music")],
    "ecg_resnet": [partial(a.ecg_resnet, b) for b in (1, 32)],
    "wavenet": [partial(a.wavenet, b, n) for b, n in ((1, 16000), (4, 8000))],
    "demucs_v2": [partial(a.demucs_v2, 1, 88200)],
    "conformer": [partial(a.conformer_conv, 8, 500, 256, 31),
                  partial(a.conformer_conv, 4, 1000, 512, 15)],
    "melgan_discriminator": [partial(a.melgan_discriminator, b, 8192) for b in (1, 16)],
    "time_series": [partial(a.time_series_fcn, b, n) for b, n in ((16, 500), (64, 1024))],
    "text_cnn": [partial(a.text_cnn, 50, 64), partial(a.text_cnn, 50, 400),
                 partial(a.char_cnn, 128)],
    "eeg_filters": [partial(a.eeg_filter_bank, b, c, k) for b, c, k in ((16, 64, 257),
                                                                      (4, 128, 129))],
    "radar": [partial(a.radar_matched_filter, p, n, k) for p, n, k in ((64, 16384, 1000),
                                                                     (16, 65536, 4096))],
    "reverb": [partial(a.reverb, t, k) for t, k in ((1.0, 8191), (2.0, 24000), (1.0, 48000))],
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
