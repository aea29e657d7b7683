"""Every CLI command explains itself: ``--help`` works and says what the command does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gradeflow.ops.cli import app


# Typer 0.29 vendors its own click: groups are the commands that have ``commands``.
def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


ROOT = typer.main.get_command(app)
PATHS = list(command_paths(ROOT))


def command_at(path: tuple[str, ...]) -> Any:
    command: Any = ROOT
    for name in path:
        command = command.commands[name]
    return command


def test_the_cli_has_the_commands_of_the_contract() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"up", "demo", "migrate", "api", "worker", "scheduler", "clients create",
            "jobs ls", "jobs retry", "jobs cancel", "catalog load", "bench jobs",
            "recommendations report"} <= names  # fmt: skip


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "gradeflow")
def test_every_command_has_help_that_says_what_it_does(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])

    assert result.exit_code == 0, result.output
    command = command_at(path)
    assert (command.help or "").strip(), f"`gradeflow {' '.join(path)}` has no description"
