"""A local cache of fitted predictors, so that a new process does not refit the same data.

One file per device fingerprint, ``<user cache dir>/autoconv/models/<device_id>.npz``, written
only by this process' own code from a model it fitted itself on this machine. The file holds
plain numeric and text arrays (the tree ensemble of :mod:`autoconv.prediction.tree_ensemble`
plus the feature schema: its version and column names, the strategies and the measured
signatures) and is read with ``allow_pickle=False``: loading it never executes code. It is
keyed by the hash of the training data (:func:`autoconv.prediction.training_data.data_key`):
a model fitted on other data, with another feature version, other columns (a term added to
:mod:`autoconv.strategies.work`, say) or other strategies is ignored, and a missing, damaged
or incompatible file falls back (with a warning for the damaged ones) to refitting.

Models never travel: nothing here reads a shared database's blobs or a bundle.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import platformdirs

from autoconv.prediction.features import FEATURES_VERSION, FeatureSpace
from autoconv.prediction.predictor import LearnedPredictor
from autoconv.prediction.tree_ensemble import TreeEnsemble


def default_dir() -> Path:
    """Where cached models live (``AUTOCONV_MODEL_DIR`` overrides the user cache dir)."""
    override = os.environ.get("AUTOCONV_MODEL_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("autoconv")) / "models"


def path_for(device_id: str, directory: Path | None = None) -> Path:
    """The cache file of one device fingerprint."""
    return (directory or default_dir()) / f"{device_id}.npz"


def save(predictor: LearnedPredictor, path: Path, key: str) -> None:
    """Store ``predictor`` (fitted on data with hash ``key``) atomically at ``path``.

    A failure to write (read-only home, full disk) only warns: the model stays in memory.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        os.close(handle)
        predictor.ensemble.save(
            Path(temporary), key=key, version=predictor.version,
            strategies=np.array(predictor.space.strategies, dtype=str),
            columns=np.array(predictor.space.columns, dtype=str),
            measured=predictor.measured, margin=predictor.margin,
            max_distance=predictor.max_distance, samples=predictor.samples)
        os.replace(temporary, path)
    except OSError as error:
        warnings.warn(f"autoconv: could not cache the fitted predictor at {path}: {error}",
                      RuntimeWarning, stacklevel=2)


def load(path: Path, key: str, strategies: tuple[str, ...] | None = None
         ) -> LearnedPredictor | None:
    """The cached predictor at ``path`` if it was fitted on data with hash ``key``.

    Args:
        strategies: when given, the model must describe exactly these strategies.

    Returns:
        None when the file is missing, stale (other data, feature version, columns or
        strategies) or unreadable; an unreadable file also warns.
    """
    if not path.exists():
        return None
    if not path.is_file():  # a FIFO would block the reader forever
        warnings.warn(f"autoconv: ignoring {path}: not a regular file; refitting",
                      RuntimeWarning, stacklevel=2)
        return None
    try:
        ensemble, meta = TreeEnsemble.load(path)
        stored_strategies = tuple(str(name) for name in meta["strategies"])
        space = FeatureSpace(stored_strategies)
        columns = tuple(str(name) for name in meta.get("columns", ()))
        if (str(meta["key"]) != key or int(meta["version"]) != FEATURES_VERSION
                or columns != space.columns
                or (strategies is not None and stored_strategies != strategies)):
            return None
        measured = np.asarray(meta["measured"], dtype=np.float64)
        if int(ensemble.feature.max()) >= len(space.columns) or measured.ndim != 2:
            raise ValueError("the model does not match its feature schema")
        return LearnedPredictor(ensemble, space, measured, float(meta["margin"]),
                                float(meta["max_distance"]), FEATURES_VERSION,
                                int(meta["samples"]))
    except Exception as error:  # noqa: BLE001  (zip, numpy, value errors: the cache is optional)
        warnings.warn(f"autoconv: ignoring the cached predictor at {path} ({error}); "
                      f"refitting", RuntimeWarning, stacklevel=2)
        return None
