"""A fitted gradient-boosting model as plain arrays: fast to evaluate, safe to store.

scikit-learn's ``HistGradientBoostingRegressor`` fits the model; :meth:`TreeEnsemble.from_sklearn`
copies its trees into a few padded numeric arrays (feature, threshold, children, leaf value per
node). Evaluating those arrays with numpy walks every tree for every row at once, one level per
step: the few candidates of one signature take a few hundred microseconds, several times less
than scikit-learn's own ``predict`` (input checks and thread start-up on every call; see
``benchmarks/predictor-cpu.md``).

Being plain numbers, the ensemble is stored with ``numpy.savez`` and read back with
``allow_pickle=False``: loading a stored model never executes code.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FIELDS = ("feature", "threshold", "left", "right", "value")
#: Most bytes a stored ensemble's arrays may expand to (a real one takes a few megabytes).
MAX_EXPANDED_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TreeEnsemble:
    """Sum of regression trees plus a baseline, as padded ``(trees, nodes)`` arrays.

    A leaf's children are the leaf itself, so walking a fixed number of levels (``depth``)
    leaves every row on its leaf, whatever the depth of the leaf.
    """

    feature: np.ndarray      # int32 (trees, nodes); 0 at leaves (and padding)
    threshold: np.ndarray    # float64: go left when x <= threshold
    left: np.ndarray         # int32
    right: np.ndarray        # int32
    value: np.ndarray        # float64, leaf values (0 elsewhere)
    baseline: float
    depth: int

    @classmethod
    def from_sklearn(cls, model: object) -> TreeEnsemble:
        """Copy the trees of a fitted single-output ``HistGradientBoostingRegressor``.

        Raises:
            ValueError: the model is not fitted, has categorical splits, or is multi-output.
        """
        predictors = getattr(model, "_predictors", None)
        if not predictors or len(predictors[0]) != 1:
            raise ValueError("expected a fitted single-output HistGradientBoostingRegressor")
        trees = [per_iteration[0].nodes for per_iteration in predictors]
        width = max(len(nodes) for nodes in trees)
        shape = (len(trees), width)
        feature = np.zeros(shape, dtype=np.int32)
        threshold = np.zeros(shape)
        left = np.tile(np.arange(width, dtype=np.int32), (len(trees), 1))
        right = left.copy()
        value = np.zeros(shape)
        depth = 0
        for t, nodes in enumerate(trees):
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            n = len(nodes)
            leaf = nodes["is_leaf"].astype(bool)
            feature[t, :n] = np.where(leaf, 0, nodes["feature_idx"])
            threshold[t, :n] = nodes["num_threshold"]
            left[t, :n] = np.where(leaf, np.arange(n), nodes["left"])
            right[t, :n] = np.where(leaf, np.arange(n), nodes["right"])
            value[t, :n] = np.where(leaf, nodes["value"], 0.0)
            depth = max(depth, int(nodes["depth"].max()))
        baseline = float(np.ravel(model._baseline_prediction)[0])  # type: ignore[attr-defined]
        return cls(feature, threshold, left, right, value, baseline, depth)

    @functools.cached_property
    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(children, features, thresholds, tree offsets) flattened over all trees.

        Node j of tree t is flat node ``n = t * nodes + j``; its right child is
        ``children[2n]`` and its left child ``children[2n + 1]``, so one gather indexed by
        ``2n + go_left`` takes a step down every tree.
        """
        trees, nodes = self.feature.shape
        offsets = (np.arange(trees, dtype=np.int64) * nodes)[:, None]
        children = np.empty(2 * trees * nodes, dtype=np.int64)
        children[0::2] = (self.right + offsets).ravel()
        children[1::2] = (self.left + offsets).ravel()
        return children, self.feature.ravel().astype(np.int64), self.threshold.ravel(), offsets

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``X`` (shape ``(rows, features)``, no NaN)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        rows, width = X.shape
        trees = self.feature.shape[0]
        children, feature, threshold, offsets = self._flat
        node = np.repeat(offsets, rows, axis=1).ravel()
        base = np.tile(np.arange(rows, dtype=np.int64) * width, trees)
        x = X.ravel()
        for _ in range(self.depth):
            go_left = x[base + feature[node]] <= threshold[node]
            node = children[2 * node + go_left]
        return self.baseline + self.value.ravel()[node].reshape(trees, rows).sum(axis=0)

    def save(self, path: Path, **metadata: np.ndarray | str | int | float) -> None:
        """Write the ensemble (and extra plain metadata arrays) to an ``.npz`` file."""
        arrays = {name: getattr(self, name) for name in _FIELDS}
        np.savez(path, baseline=np.float64(self.baseline), depth=np.int64(self.depth),
                 **arrays, **{f"meta_{k}": np.asarray(v) for k, v in metadata.items()})

    @classmethod
    def load(cls, path: Path) -> tuple[TreeEnsemble, dict[str, np.ndarray]]:
        """Read an ensemble written by :meth:`save` (never unpickles anything).

        Returns:
            (ensemble, metadata arrays by name).

        Raises:
            OSError, ValueError, KeyError: the file is missing, damaged, not an ensemble, or
                would expand past :data:`MAX_EXPANDED_BYTES`.
        """
        with zipfile.ZipFile(path) as archive:  # a small file may expand to gigabytes
            expanded = sum(item.file_size for item in archive.infolist())
        if expanded > MAX_EXPANDED_BYTES:
            raise ValueError(f"{path}: its arrays would take {expanded} bytes, more than a "
                             f"model may ({MAX_EXPANDED_BYTES})")
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in _FIELDS}
            metadata = {k.removeprefix("meta_"): data[k] for k in data.files
                        if k.startswith("meta_")}
            ensemble = cls(**arrays, baseline=float(data["baseline"]), depth=int(data["depth"]))
        shapes = {arrays[name].shape for name in _FIELDS}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"{path}: inconsistent tree arrays")
        nodes = next(iter(shapes))[1]
        if not 0 <= ensemble.depth <= nodes:  # a walk of more levels than nodes never ends well
            raise ValueError(f"{path}: a depth of {ensemble.depth} for trees of {nodes} nodes")
        return ensemble, metadata
