"""farm.toml validation: good manifests load, bad ones say file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfarm.errors import ManifestError
from modelfarm.manifest import load_manifest, parse_duration, parse_manifest
from tests.conftest import run_cli, small_model_toml


def test_default_farm_is_valid_and_offline() -> None:
    m = load_manifest(None)
    names = {s.name: s for s in m.models}
    assert {"brain", "small", "minilm"} <= set(names)
    assert names["brain"].role == "brain" and names["brain"].parts == 22
    assert all(s.tier == "local" and s.base_url is None for s in m.models)
    assert all(s.sha256 for s in m.models), "every default model is pinned"


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = info.value.message
    assert str(path) in message, "the error names the file"
    return message


def test_bad_value_names_key_and_choices(tmp_path: Path) -> None:
    msg = _error(tmp_path, small_model_toml(tier="cloud"))
    assert "models[0] (name = 'small').tier" in msg
    assert "'local', 'private' or 'public'" in msg and "'cloud'" in msg


def test_unknown_key_is_refused_with_fix(tmp_path: Path) -> None:
    msg = _error(tmp_path, small_model_toml(contxt_length=4))
    assert "contxt_length" in msg and "fix:" in msg


def test_two_sources_and_missing_base_url(tmp_path: Path) -> None:
    msg = _error(tmp_path, small_model_toml(path="x.gguf"))
    assert "exactly one source" in msg
    msg = _error(tmp_path, '[[models]]\nname = "r"\nbackend = "openai"\npackage = "p"\n')
    assert "needs `base_url`" in msg


def test_duplicate_names_bad_toml_no_models(tmp_path: Path) -> None:
    assert "used twice" in _error(tmp_path, small_model_toml() + small_model_toml())
    assert "not valid TOML" in _error(tmp_path, "[[models]\nname=")
    assert "models" in _error(tmp_path, "[farm]\nname = 'x'\n")


def test_chunked_weights_must_be_pinned(tmp_path: Path) -> None:
    text = '[[models]]\nname = "b"\nbackend = "llama_cpp"\npackage = "w_part{n}"\nparts = 3\n'
    assert "must pin `sha256`" in _error(tmp_path, text)


def test_missing_file_tells_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="modelfarm init"):
        load_manifest(tmp_path / "nope.toml")


def test_durations() -> None:
    assert parse_duration("5m") == 300 and parse_duration(30) == 30 and parse_duration("1h") == 3600
    assert parse_duration("forever") == float("inf") and parse_duration(-1) == float("inf")
    with pytest.raises(ValueError):
        parse_duration("soon")
    m = parse_manifest(small_model_toml(keep_alive="90s"))
    assert m.models[0].keep_alive == 90


def test_init_writes_a_manifest_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "farm.toml"
    done = run_cli("init", str(target))
    assert done.returncode == 0, done.stderr
    m = load_manifest(target)
    assert {s.backend for s in m.models} == {"llama_cpp", "openai", "embedding"}
    assert "#" in target.read_text(), "the example is commented"
    again = run_cli("init", str(target))
    assert again.returncode == 1 and "--force" in again.stderr


def test_cli_reports_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(small_model_toml(role="boss"))
    done = run_cli("models", "--farm", str(path))
    assert done.returncode == 2
    assert "role" in done.stderr and str(path) in done.stderr.replace("\n", "")


def test_ray_settings_are_checked_and_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, small_model_toml() + "[models.ray]\nmin_replicas = 3\nmax_replicas = 2\n")
    assert "models[0] (name = 'small').ray" in msg and "max_replicas must be >= min_replicas" in msg
    msg = _error(tmp_path, small_model_toml() + "[models.ray]\nnum_gpu = 1\n")
    assert "num_gpu" in msg and "fix:" in msg
    msg = _error(tmp_path, small_model_toml() + '[models.ray]\nmultiplex = "two words"\n')
    assert "multiplex" in msg
    msg = _error(tmp_path, small_model_toml() + '[models.ray]\nmultiplex = "m"\ndeploy = false\n')
    assert "multiplex needs a deployment" in msg
    msg = _error(tmp_path, "[ray]\nnum_cpus = -1\n" + small_model_toml())
    assert "ray.num_cpus" in msg
    ok = parse_manifest(
        "[ray]\nnum_cpus = 0.5\nmax_models_per_replica = 3\n" + small_model_toml() + "[models.ray]\nreplicas = 2\n",
        source=tmp_path / "farm.toml",
    )
    assert ok.ray.num_cpus == 0.5 and ok.models[0].ray.replicas == 2 and ok.models[0].ray.num_cpus is None
