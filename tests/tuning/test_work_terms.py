"""Work as named terms: priced term by term, featurized by name, and, for the three original
strategies, exactly the predictions and counts they had when the cost model and the features
still asked whether a candidate ran an FFT plan or ``F.conv1d``, plus the one term added since
(the FFT pipeline's frequency-major copies, ``transposed_bytes``)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from autoconv.prediction.features import CANDIDATE_COLUMNS, FeatureSpace
from autoconv.signature import Signature
from autoconv.strategies import TERMS, TRAITS, Work, get
from autoconv.strategies.plan import fft_plan, plan_work
from autoconv.tuning.cost_model import PRICES, CalibratedCostModel, CostConstants, seconds

CPU = torch.device("cpu")
#: The constants the old cost model priced the table below with (the two new rates, for
#: matrix multiplies and layout conversions, are terms no original strategy reports).
CONSTANTS = CostConstants(direct_mac_s=3e-11, narrow_mac_s=1e-9, depthwise_mac_s=2e-10,
                          fft_unit_s=1e-10, complex_mac_s=1e-10, elementwise_s=4e-10,
                          call_s=1e-5, matmul_mac_s=7e-12, copy_byte_s=3e-11)


def _sig(batch, cin, cout, length, kernel, stride, left, right, dilation, groups, dtype="float32",
         grad=False) -> Signature:
    return Signature(batch, cin, cout, length, kernel, stride, left, right, dilation, groups,
                     dtype, "cpu", grad)


DENSE = _sig(4, 8, 16, 4096, 65, 1, 32, 32, 1, 1)
DEPTHWISE = _sig(4, 256, 256, 2000, 31, 1, 15, 15, 1, 256)
#: Recorded from the code before Work had terms: (signature, strategy, params, predicted
#: seconds, log2 total work, old candidate columns). Direct rows: (log2 macs, log2(1 + padding
#: left to F.conv1d), log2(1 + elements copied)); FFT rows: log2 of (FFT length, frames,
#: butterfly units, channel-mix multiply-adds, elements, length / taps, odd part).
BEFORE = [
    (DENSE, "direct", {}, 0.13632488, 27.022367813028, (27.022367813028, 5.044394119358, 0.0)),
    (DENSE, "direct", {"pre_pad": 1}, 0.136388128, 27.023776007421,
     (27.022367813028, 0.0, 17.022378650541)),
    (_sig(2, 3, 4, 50, 8, 1, 3, 4, 1, 1), "direct", {}, 2.9736800000000003e-05, 13.279320387943,
     (13.228818690496, 2.0, 8.422064766173)),
    (_sig(2, 32, 48, 3000, 101, 3, 7, 0, 2, 1, grad=True), "direct", {}, 0.02642825088,
     28.114494412001, (28.113538703056, 0.0, 17.554116649099)),
    (DENSE, "fft", {}, 0.001548785613469032, 23.639918293625,
     (12.036173612553, 0.0, 23.4328334512, 20.036860446673, 19.358376480328, 6.013805799525,
      9.036173612553)),
    (DENSE, "overlap_add", {"block_size": 256}, 0.0008669312000000001, 22.653544868732,
     (8.0, 4.459431618637, 22.129283016945, 20.470658874061, 19.087794304788, 1.977632186972,
      0.0)),
    (DEPTHWISE, "fft", {}, 0.007306912433458751, 25.749403108239,
     (10.9772799235, 0.0, 25.603653630909, 19.978710459106, 22.064826953181, 6.023083613113,
      5.9772799235)),
    (_sig(4, 1, 512, 16000, 10, 5, 0, 0, 1, 1), "overlap_add", {"block_size": 16},
     0.007702489600000001, 25.721122558596,
     (4.0, 7.741466986401, 24.763808870098, 24.233320082731, 22.760174156273, 3.0, 0.0)),
    (_sig(2, 64, 64, 1000, 9, 2, 0, 0, 4, 64, "float64", True), "overlap_add",
     {"block_size": 64}, 0.0009787008, 20.959186926845,
     (6.0, 3.459431618637, 20.672425341971, 16.503825737996, 18.066761932387, 1.91253715875,
      0.0)),
]


@pytest.mark.parametrize("row", BEFORE, ids=lambda row: f"{row[1]}{row[2]}")
def test_the_original_strategies_predict_and_count_as_before(row) -> None:
    signature, name, params, before_s, log_total, old = row
    model = CalibratedCostModel({"cpu": CONSTANTS})
    work = get(name).work(signature, params)
    added = work["transposed_bytes"]  # priced at the copy rate when not measured apart
    calls = 3 if signature.requires_grad else 1  # forward and two backward convolutions
    assert model.predict(signature, get(name), params, CPU) == pytest.approx(
        before_s + calls * added * CONSTANTS.copy_byte_s, rel=1e-12)
    counts = [2 ** value for value in old]
    if name == "direct":
        macs, padding, copied = counts
        assert work["direct_macs"] == pytest.approx(macs, rel=1e-9)
        assert work["conv_padding"] == pytest.approx(padding - 1, abs=1e-9)
        assert work["elements"] == pytest.approx(copied - 1, abs=1e-6)
        assert work["calls"] == 1 + (copied > 1)
    else:
        length, frames, units, mix, elements, per_taps, odd = counts
        assert (work["fft_length"], work["fft_frames"]) == (round(length), round(frames))
        assert work["fft_units"] == pytest.approx(units, rel=1e-9)
        # a mix of one input spectrum per output is an elementwise product, not a matmul
        assert work["spectral_macs"] + work["elements"] == pytest.approx(mix + elements, rel=1e-9)
        assert work["block_per_taps"] == pytest.approx(per_taps, rel=1e-9)
        assert work["fft_odd_part"] == round(odd) and work["calls"] == 4
    features = FeatureSpace(("direct", "fft", "overlap_add")).rows(signature, [(name, params)])[0]
    columns = FeatureSpace(("direct", "fft", "overlap_add")).columns
    assert features[columns.index("log_work")] == pytest.approx(
        math.log2(2 ** log_total + added), abs=1e-9)


def test_an_fft_mix_by_matrix_product_pays_for_its_frequency_major_copies() -> None:
    # 8 input channels: the input's (4 x 8 rows) and the weight's (16 x 8 rows) spectra are
    # copied frequency-major, complex64, and the output's 4 x 16 frames of real samples out
    # of it, each read and written once
    work = get("fft").work(DENSE, {})
    n = work["fft_length"]
    assert work["transposed_bytes"] == 2 * 8 * (n // 2 + 1) * (4 * 8 + 16 * 8) + 2 * 4 * n * 64
    wide = CostConstants(**{**CONSTANTS.__dict__, "transposed_byte_s": 1e-9})
    assert seconds(work, DENSE, wide) - seconds(work, DENSE, CONSTANTS) == pytest.approx(
        work["transposed_bytes"] * (1e-9 - CONSTANTS.copy_byte_s), rel=1e-9)
    # float64 spectra are twice as wide; a depthwise mix is elementwise and copies nothing
    double = get("fft").work(_sig(4, 8, 16, 4096, 65, 1, 32, 32, 1, 1, "float64"), {})
    assert double["transposed_bytes"] == 2 * work["transposed_bytes"]
    assert get("fft").work(DEPTHWISE, {})["transposed_bytes"] == 0
    # a strided depthwise call folds its phases into the channels: a matrix product again
    strided = _sig(2, 64, 64, 1000, 9, 2, 0, 0, 1, 64)
    assert get("fft").work(strided, {})["transposed_bytes"] > 0


@pytest.mark.parametrize(("signature", "params"), [
    (DENSE, {}), (DEPTHWISE, {}), (DENSE, {"block_size": 256})])
def test_a_reused_weight_is_transformed_once_not_on_every_call(signature, params) -> None:
    # a layer's weight in inference: its spectra are kept, so a call pays only the input's
    # and the output's transforms, elements and copies
    name = "overlap_add" if params else "fft"
    # (a layer's fft takes the coarse FFT length that nearby lengths share: compared at it)
    once = (get(name).work(signature, params) if params
            else plan_work(signature, fft_plan(signature, coarse=True)))
    reused = get(name).work(dataclasses.replace(signature, weight_reused=True), params)
    n = once["fft_length"]
    assert reused["fft_length"] == n and reused["fft_frames"] == once["fft_frames"]
    weight_rows = signature.out_channels * (signature.in_channels // signature.groups)
    assert once["fft_units"] - reused["fft_units"] == pytest.approx(
        weight_rows * n * math.log2(n))
    assert once["elements"] - reused["elements"] == weight_rows * (n // 2 + 1)
    matrix_mix = not signature.is_depthwise
    assert once["transposed_bytes"] - reused["transposed_bytes"] == (
        2 * 8 * weight_rows * (n // 2 + 1) if matrix_mix else 0)  # complex64, read and written
    assert once["spectral_macs"] == reused["spectral_macs"]  # the mix itself is unchanged
    # spectra beyond what a layer keeps are recomputed on every call, and counted so
    huge = dataclasses.replace(signature, out_channels=signature.out_channels * 2**12,
                               weight_reused=True)
    unkept = dataclasses.replace(huge, weight_reused=False)
    assert get(name).work(huge, params) == (get(name).work(unkept, params) if params
                                             else plan_work(unkept, fft_plan(unkept, True)))
    # and other strategies' work does not depend on it
    assert get("direct").work(dataclasses.replace(signature, weight_reused=True), {}) == (
        get("direct").work(signature, {}))


def test_every_term_has_a_price_and_every_term_and_trait_a_column() -> None:
    assert set(PRICES) == set(TERMS)
    assert set(CANDIDATE_COLUMNS) == {f"work_{name}" for name in (*TERMS, *TRAITS)} | {"log_work"}


def test_work_is_a_sum_of_priced_terms() -> None:
    s = DENSE
    work = Work.of(calls=2, matmul_macs=1e6, bytes_moved=4e5, elements=10, conv_padding=3)
    expected = (2 * CONSTANTS.call_s + 1e6 * CONSTANTS.matmul_mac_s
                + 4e5 * CONSTANTS.copy_byte_s + 10 * CONSTANTS.elementwise_s)
    assert seconds(work, s, CONSTANTS) == pytest.approx(expected, rel=1e-12)
    assert work.total == 1e6 + 4e5 + 10  # calls are overhead, traits are not priced
    assert work.traits == {"conv_padding": 3} and work["fft_units"] == 0
    both = work + Work.of(calls=1, matmul_macs=1e6, conv_padding=5)
    assert (both["calls"], both["matmul_macs"], both["conv_padding"]) == (3, 2e6, 5)


def test_a_misspelt_or_negative_term_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown work terms 'matmul_mac'"):
        Work.of(matmul_mac=1)
    with pytest.raises(ValueError, match="negative work counts: bytes_moved"):
        Work.of(bytes_moved=-1)
    assert Work.of(calls=1, elements=0).values == (("calls", 1),)  # zeros dropped


def test_the_direct_rate_follows_the_signatures_class() -> None:
    work = Work.of(direct_macs=1e6)
    narrow = _sig(1, 4, 4, 1000, 3, 1, 0, 0, 1, 1)
    depthwise = _sig(1, 64, 64, 1000, 3, 1, 0, 0, 1, 64)
    assert seconds(work, DENSE, CONSTANTS) == pytest.approx(
        1e6 * CONSTANTS.narrow_mac_s)  # 8 channels per group: narrow
    assert seconds(work, narrow, CONSTANTS) == pytest.approx(1e6 * CONSTANTS.narrow_mac_s)
    assert seconds(work, depthwise, CONSTANTS) == pytest.approx(1e6 * CONSTANTS.depthwise_mac_s)
    dense = _sig(1, 64, 64, 1000, 3, 1, 0, 0, 1, 1)
    assert seconds(work, dense, CONSTANTS) == pytest.approx(1e6 * CONSTANTS.direct_mac_s)
    assert math.isclose(seconds(Work(), dense, CONSTANTS), 0.0)
