"""The layout's rules, checked on the source: the dependency direction between autoconv's
packages, and no strategy or parameter name used as a string outside ``strategies/``
(``docs/architecture.md`` explains both)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.strategies.streaming import all_stream_strategies

PACKAGE = Path(__file__).resolve().parents[1] / "autoconv"

#: Each part of autoconv, lowest first: a part may import its own layer and those below it.
LAYERS: list[set[str]] = [
    {"__init__", "plain", "contexts", "settings", "signature", "buckets"},
    {"strategies"},
    {"choice"},
    {"tuning"},
    {"catalogue"},
    {"storage"},
    {"prediction"},
    {"runtime"},
    {"streaming"},
    {"offline"},
    {"functional", "nn"},
    {"cli", "__main__"},
]
LAYER = {part: index for index, parts in enumerate(LAYERS) for part in parts}


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(PACKAGE).parts[0].removesuffix(".py"), path)
            for path in sorted(PACKAGE.rglob("*.py"))]


def _imported_parts(path: Path) -> set[str]:
    """The parts of autoconv (first component after ``autoconv.``) that ``path`` imports."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] if node.module != "autoconv" else [
                f"autoconv.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("autoconv."):
                parts.add(name.split(".")[1])
    return parts - {"__version__"}


def test_every_part_of_autoconv_has_a_layer() -> None:
    assert {part for part, _ in _modules()} == set(LAYER)


@pytest.mark.parametrize("part,path", _modules(),
                         ids=[str(path.relative_to(PACKAGE)) for _, path in _modules()])
def test_imports_only_go_down_the_layers(part: str, path: Path) -> None:
    upward = {other for other in _imported_parts(path) if LAYER[other] > LAYER[part]}
    assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)} from above it"


def _strategy_words() -> set[str]:
    """Every registered strategy's name and every parameter name its grids use, streaming
    strategies included."""
    words = {strategy.name for strategy in [*all_strategies(), *all_stream_strategies()]}
    for length, kernel, padding in ((4096, 65, 32), (64, 3, 1)):
        signature = Signature(2, 4, 4, length, kernel, 1, padding, padding, 1, 1, "float32",
                              "cpu")
        for strategy in all_strategies():
            words |= {key for params in strategy.param_grid(signature) for key in params}
            words |= set(strategy.size_params)
        stream = Signature(2, 4, 4, 64, kernel, 1, kernel - 1, 0, 1, 1, "float32", "cpu",
                           chunk_size=64)
        for stream_strategy in all_stream_strategies():
            words |= {key for params in stream_strategy.param_grid(stream) for key in params}
            words |= set(stream_strategy.size_params)
    return words


def test_no_strategy_or_parameter_name_is_a_string_outside_strategies() -> None:
    words = _strategy_words()
    assert {"direct", "fft", "overlap_add", "block_size", "pre_pad", "stateful_direct",
            "partitioned", "partition"} <= words
    leaks = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
             for part, path in _modules() if part != "strategies"
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in words]
    assert leaks == []


def test_autoconv_calls_torchs_conv1d_only_through_plain() -> None:
    # Under autoconv.enable(), F.conv1d and torch.conv1d are autoconv's own: code inside
    # autoconv that called them would call itself. (The zoo's models are user code: one
    # calls F.conv1d as the published architecture does.)
    calls = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
             for _, path in _modules() if path != PACKAGE / "catalogue" / "zoo.py"
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr == "conv1d"
             and isinstance(node.value, ast.Name) and node.value.id in ("F", "torch")]
    assert calls == []
