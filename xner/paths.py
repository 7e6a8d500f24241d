"""Where xner keeps what it computes once and reuses: ``$XNER_CACHE`` (default ``~/.cache/xner``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The root of every xner cache (converted models, features, soft labels)."""
    return Path(os.environ.get("XNER_CACHE") or Path.home() / ".cache" / "xner")
