"""Where xner keeps what it computes once and reuses: ``$XNER_CACHE`` (default ``~/.cache/xner``)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["cache_dir", "cache_file"]


def cache_dir() -> Path:
    """The root of every xner cache (converted models, features, soft labels)."""
    return Path(os.environ.get("XNER_CACHE") or Path.home() / ".cache" / "xner")


def cache_file(folder: str, identity: object, suffix: str) -> Path:
    """The cache entry of a result that depends on exactly ``identity`` (JSON-serialisable:
    versions, content digests, settings): ``$XNER_CACHE/<folder>/<sha256 of it>.<suffix>``, so a
    change to anything it depends on is a different file, never a stale one."""
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
    return cache_dir() / folder / f"{digest}.{suffix}"
