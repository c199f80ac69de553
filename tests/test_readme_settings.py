"""The README's settings table lists every setting, its environment variable and its default,
as ``autoconv.settings.Settings`` defines them: the table and the code cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from autoconv.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| setting (env var) | default | meaning |"


def table_rows() -> list[tuple[list[str], list[str], str]]:
    """(setting names, variable names, default cell) of each row of the settings table."""
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADER)
    rows = []
    for line in text[start:text.index("\n\n", start)].splitlines()[2:]:
        first, default = line.split(" | ")[:2]
        names = re.findall(r"`([a-z_]+)`", first.split("(")[0])
        variables = re.findall(r"`(AUTOCONV_[A-Z_]+)`", first)
        rows.append((names, variables, default))
    return rows


def shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and value >= 8:
        return f"{int(value)}"
    return str(value)


def test_every_setting_is_in_the_table_with_its_variable_and_default() -> None:
    rows = table_rows()
    listed = {name: (variables, default, names) for names, variables, default in rows
              for name in names}
    assert set(listed) == set(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        variables, default, names = listed[name]
        assert f"AUTOCONV_{name.upper()}" in variables, name
        values = re.findall(r"`([^`]+)`", default)
        if field.default is None:  # described in words ("per dtype", "SQLite file ...")
            assert not values, name
            continue
        assert len(values) == len(names), name
        written = values[names.index(name)]
        assert written in (shown(field.default), str(field.default)), (name, written)
