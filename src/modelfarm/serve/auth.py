"""Optional API keys: from MODELFARM_API_KEYS (comma separated) or a keys file (one a line).

Keys are kept only as sha256 digests; the ledger stores a short key id, never the key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from modelfarm.errors import AuthenticationError, ManifestError


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    def __init__(self, keys: list[str]) -> None:
        self._digests = {_digest(k) for k in keys if k}

    @classmethod
    def from_sources(cls, keys_file: Path | None = None, env: str = "MODELFARM_API_KEYS") -> KeyRing:
        keys = [k.strip() for k in os.environ.get(env, "").split(",")]
        if keys_file is not None:
            try:
                lines = keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ManifestError(f"{keys_file}: cannot read the API keys file ({exc.strerror})") from exc
            keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> str | None:
        """The key id for a valid `Authorization: Bearer KEY` header; raises 401 otherwise."""
        if not self._digests:
            return None
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("this farm needs an API key: send the header `Authorization: Bearer YOUR_KEY`")
        digest = _digest(authorization[7:].strip())
        if digest not in self._digests:
            raise AuthenticationError("the API key is not valid for this farm")
        return digest[:12]
