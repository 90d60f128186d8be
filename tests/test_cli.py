"""The `modelfarm` command as a user runs it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Gateway, run_cli, small_model_toml


def test_help_lists_the_commands() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("serve", "chat", "models", "init", "ledger"):
        assert command in done.stdout


def test_chat_in_process_streams_an_answer(tmp_path: Path) -> None:
    farm = tmp_path / "farm.toml"
    farm.write_text(f'[farm]\ncache_dir = "{tmp_path}"\n' + small_model_toml())
    done = run_cli("chat", "Say hello.", "--farm", str(farm), "--model", "small", "--max-tokens", "12")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_chat_and_models_against_a_running_gateway(gateway: Gateway) -> None:
    done = run_cli("chat", "Say hello.", "--url", gateway.url, "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    missing = run_cli("chat", "hi", "--url", gateway.url, "--model", "ghost")
    assert missing.returncode == 1 and "ghost" in missing.stderr


def test_models_table_shows_loaded_state(gateway: Gateway, tmp_path: Path) -> None:
    farm = tmp_path / "farm.toml"
    farm.write_text(small_model_toml())
    done = run_cli("models", "--farm", str(farm), "--url", gateway.url)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "small" in line)
    assert "micro" in row and "local" in row and "yes" in row


def test_errors_print_the_manifest_keys_literally(tmp_path: Path) -> None:
    empty = tmp_path / "farm.toml"
    empty.write_text('[farm]\nname = "empty"\n')
    done = run_cli("serve", "--farm", str(empty))
    assert done.returncode == 2
    assert "declare at least one [[models]] entry" in done.stderr, done.stderr


def test_serve_help_explains_ray() -> None:
    done = run_cli("serve", "--help", env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    assert "--ray" in done.stdout and "--address" in done.stdout and "modelfarm[ray]" in done.stdout
