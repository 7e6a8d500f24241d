"""Checksums of a model folder's files, written when it is saved and verified when it is loaded.

Flipped bits in a weights file load without complaint and predict garbage (F1 0, exit 0);
a folder whose files were truncated or changed after saving must fail to load instead,
naming the file, like the feature cache's shards do. ``xner-checksums.json`` lists the
SHA-256 of every other file of the folder. Folders saved before checksums existed have
no manifest and load unverified.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xner.errors import XnerError

__all__ = ["CHECKSUMS_FILE", "verify_checksums", "write_checksums"]

CHECKSUMS_FILE = "xner-checksums.json"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_checksums(directory: Path) -> None:
    """Record the SHA-256 of every file under ``directory`` (call it last, when all are written)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS_FILE)
    table = {p.relative_to(directory).as_posix(): _sha256(p) for p in files}
    (directory / CHECKSUMS_FILE).write_text(json.dumps({"sha256": table}, indent=1, sort_keys=True))


def verify_checksums(directory: Path) -> None:
    """Check every file the manifest lists; nothing to check without a manifest.

    Raises:
        XnerError: a listed file is missing or differs, or the manifest is unreadable,
            naming the file.
    """
    manifest = directory / CHECKSUMS_FILE
    if not manifest.is_file():
        return
    try:
        table = json.loads(manifest.read_text())["sha256"]
        items = sorted(table.items())
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise XnerError(f"{manifest}: corrupt checksum manifest; restore the model folder or retrain") from None
    for name, digest in items:
        path = directory / name
        if not path.is_file():
            raise XnerError(f"{path}: missing from the model folder (listed in {CHECKSUMS_FILE}); "
                            "restore the folder or retrain")
        if _sha256(path) != digest:
            raise XnerError(f"{path}: checksum mismatch, the file was corrupted or changed after saving; "
                            "restore the model folder or retrain")
