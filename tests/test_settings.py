"""Settings: environment variables, assignment, and the restoring context manager."""

from __future__ import annotations

import pydantic
import pytest

from autoconv.settings import Settings, settings


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCONV_MODE", "predict")
    monkeypatch.setenv("AUTOCONV_BUDGET_S", "0.25")
    monkeypatch.setenv("AUTOCONV_DB_URL", "sqlite:////tmp/x.sqlite3")
    fresh = Settings()
    assert (fresh.mode, fresh.budget_s, fresh.db_url) == ("predict", 0.25, "sqlite:////tmp/x.sqlite3")


def test_bad_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCONV_MODE", "fastest")
    with pytest.raises(pydantic.ValidationError, match="mode\n  Input should be 'tune', "
                       "'live', 'predict' or 'off'"):
        Settings()


def test_override_restores_previous_values() -> None:
    before = settings.model_dump()
    with settings.override(mode="off", budget_s=0.5) as active:
        assert active is settings
        assert settings.mode == "off" and settings.budget_s == 0.5
    assert settings.model_dump() == before


def test_override_restores_after_an_exception() -> None:
    before = settings.mode
    with pytest.raises(ZeroDivisionError), settings.override(mode="predict"):
        1 / 0
    assert settings.mode == before


def test_override_is_all_or_nothing() -> None:
    before = settings.model_dump()
    with pytest.raises(pydantic.ValidationError, match="budget_s"), settings.override(
            mode="off", budget_s=-1):
        pass
    with pytest.raises(pydantic.ValidationError, match="no_such_setting"), settings.override(
            no_such_setting=1):
        pass
    assert settings.model_dump() == before


def test_assignment_is_validated() -> None:
    before = settings.mode
    with pytest.raises(pydantic.ValidationError, match="'tune', 'live', 'predict' or 'off'"):
        settings.mode = "sometimes"  # type: ignore[assignment]
    assert settings.mode == before


def test_reload_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with settings.override():
        monkeypatch.setenv("AUTOCONV_TIE_MARGIN", "0.1")
        settings.reload_from_environment()
        assert settings.tie_margin == 0.1
        monkeypatch.delenv("AUTOCONV_TIE_MARGIN")
        settings.reload_from_environment()
        assert settings.tie_margin == Settings.model_fields["tie_margin"].default


def test_listeners_belong_to_the_object_they_were_registered_on() -> None:
    local, other = Settings(), Settings()
    heard: list[str] = []
    forget = local.on_change(lambda: heard.append("local"))
    other.mode = "off"
    assert heard == []
    local.mode = "off"
    local.mode = "off"  # the same value again: no change, no call
    assert heard == ["local"]
    forget()
    local.mode = "tune"
    assert heard == ["local"]


@pytest.mark.usefixtures("fresh_autoconv")
def test_a_local_settings_object_leaves_the_process_dispatch_alone() -> None:
    from autoconv.runtime import dispatcher

    selector = dispatcher.selector
    local = Settings(mode="off")
    local.mode = "predict"
    assert dispatcher.selector is selector  # not reset by someone else's settings
    settings.budget_s = 0.3  # the process-wide settings do reset it
    assert dispatcher.selector is not selector
