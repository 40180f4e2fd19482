"""The README documents every rejection code, escalation code, CLI command and setting."""

from __future__ import annotations

from typing import get_args

from missionwatch.cli import app
from missionwatch.codes import EscalationCode, RejectionCode
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_code_is_documented() -> None:
    for code in (*get_args(RejectionCode), *get_args(EscalationCode)):
        assert f"| `{code}` |" in README, code


def test_every_command_is_documented() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [f"spec {c.name}" for g in app.registered_groups for c in g.typer_instance.registered_commands]
    for name in names:
        assert f"missionwatch {name}" in README, name


def test_quick_start_is_two_commands() -> None:
    assert "make demo" in README and "make test" in README


def test_every_setting_is_documented_and_a_flag_of_run() -> None:
    from missionwatch.stream.app import StreamSettings

    [run] = [c for c in app.registered_commands if c.callback and c.callback.__name__ == "run"]
    assert run.callback is not None
    flags = set(run.callback.__code__.co_varnames[: run.callback.__code__.co_argcount])
    for name in StreamSettings.model_fields:
        flag, env = "--" + name.replace("_", "-"), f"MISSIONWATCH_{name.upper()}"
        assert f"| `{flag}` | `{env}` |" in README, name
        assert name in flags, name
