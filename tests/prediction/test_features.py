"""Features of (signature, candidate) pairs: shapes, meaning, and what they distinguish."""

from __future__ import annotations

import numpy as np
import pytest

from autoconv.prediction.features import (
    CANDIDATE_COLUMNS,
    SIGNATURE_COLUMNS,
    WORK_COLUMNS,
    FeatureSpace,
    neighbourhood_vector,
)
from autoconv.signature import Signature

SPACE = FeatureSpace(("direct", "fft", "overlap_add"))
SIG = Signature(4, 8, 16, 4096, 65, 1, 32, 32, 1, 1, "float32", "cpu")


def column(name: str) -> int:
    return SPACE.columns.index(name)


def test_one_row_per_candidate_with_every_column() -> None:
    rows = SPACE.rows(SIG, [("direct", {}), ("fft", {}), ("overlap_add", {"block_size": 256})])
    assert rows.shape == (3, len(SIGNATURE_COLUMNS) + len(WORK_COLUMNS) + 3
                          + len(CANDIDATE_COLUMNS))
    assert np.isfinite(rows).all()
    indicators = rows[:, [column("is_direct"), column("is_fft"), column("is_overlap_add")]]
    assert (indicators == np.eye(3)).all()


def test_sizes_are_log2() -> None:
    row = SPACE.rows(SIG, [("direct", {})])[0]
    assert row[column("log_batch")] == 2 and row[column("log_length")] == 12
    assert row[column("log_out_per_group")] == 4
    assert row[column("log_direct_macs")] == pytest.approx(np.log2(4 * 16 * 4096 * 8 * 65))


def test_block_sizes_are_told_apart_by_their_own_plan() -> None:
    small, large = SPACE.rows(SIG, [("overlap_add", {"block_size": 256}),
                                     ("overlap_add", {"block_size": 2048})])
    assert small[column("work_fft_length")] == np.log2(257)
    assert large[column("work_fft_length")] == np.log2(2049)
    # 4096 outputs, 65 taps: steps of 256 - 64 = 192 and 2048 - 64 = 1984 outputs per frame
    assert small[column("work_fft_frames")] == pytest.approx(np.log2(1 + 22))  # ceil(4096/192)
    assert large[column("work_fft_frames")] == pytest.approx(np.log2(1 + 3))  # ceil(4096/1984)
    shared = slice(0, len(SIGNATURE_COLUMNS) + len(WORK_COLUMNS))
    assert (small[shared] == large[shared]).all()


def test_padding_first_is_told_apart_by_the_padding_left_to_conv1d() -> None:
    as_called, padded_first, fft = SPACE.rows(SIG, [("direct", {}), ("direct", {"pre_pad": 1}),
                                                    ("fft", {})])
    assert as_called[column("work_conv_padding")] == pytest.approx(np.log2(33))
    assert padded_first[column("work_conv_padding")] == fft[column("work_conv_padding")] == 0
    assert as_called[column("work_elements")] == 0
    assert padded_first[column("work_elements")] > 0  # the padded copy of the input
    assert padded_first[column("log_work")] > as_called[column("log_work")]  # counts the copy
    differs = np.flatnonzero(as_called != padded_first)
    assert list(differs) == [column(name) for name in ("work_calls", "work_elements",
                                                       "work_conv_padding", "log_work")]


def test_rows_are_built_by_column_name_and_missing_terms_are_zero() -> None:
    fft_row, direct_row = SPACE.rows(SIG, [("fft", {}), ("direct", {})])
    # a term the candidate does not report is 0 in its row, whatever its position
    assert direct_row[column("work_fft_units")] == 0 and fft_row[column("work_fft_units")] > 0
    assert fft_row[column("work_direct_macs")] == 0
    assert direct_row[column("work_direct_macs")] == pytest.approx(
        np.log2(1 + 4 * 16 * 4096 * 8 * 65))
    assert (direct_row[[column("work_matmul_macs"), column("work_bytes_moved")]] == 0).all()
    named = SPACE.row({"log_batch": 3.0, "is_fft": 1.0, "work_bytes_moved": 2.0})
    assert named[column("log_batch")] == 3.0 and named[column("work_bytes_moved")] == 2.0
    assert named.sum() == 6.0
    with pytest.raises(KeyError, match="no feature column 'log_mystery'"):
        SPACE.row({"log_mystery": 1.0})


def test_strided_dilated_depthwise_signatures_are_described() -> None:
    s = Signature(2, 64, 64, 1000, 9, 2, 0, 0, 4, 64, "float64", "cpu", True)
    row = SPACE.rows(s, [("fft", {})])[0]
    assert row[column("depthwise")] == 1 and row[column("requires_grad")] == 1
    assert row[column("log_stride")] == 1 and row[column("log_dilation")] == 2
    assert row[column("dtype_bits")] == 64 and np.isfinite(row).all()


def test_unknown_strategy_cannot_be_described() -> None:
    assert not SPACE.knows("winograd")
    with pytest.raises(KeyError, match="the model does not know strategy 'winograd'"):
        SPACE.rows(SIG, [("winograd", {})])


def test_neighbourhood_counts_octaves_and_separates_categories() -> None:
    longer = Signature(4, 8, 16, 2 * 4160 - 64, 65, 1, 32, 32, 1, 1, "float32", "cpu")
    gap = np.linalg.norm(neighbourhood_vector(longer) - neighbourhood_vector(SIG))
    assert gap == pytest.approx(1.0)
    graded = Signature(4, 8, 16, 4096, 65, 1, 32, 32, 1, 1, "float32", "cpu", True)
    # only the gradients flag differs, and a categorical mismatch counts as 8 octaves
    assert np.linalg.norm(neighbourhood_vector(graded) - neighbourhood_vector(SIG)) == 8.0
