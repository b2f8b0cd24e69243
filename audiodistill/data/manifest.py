"""One manifest format for every corpus: a list of utterances with an id and an audio reference.

Sources read into it: a directory of audio files, a JSONL / CSV / Parquet manifest, or a
Hugging Face `datasets` dataset saved with `save_to_disk`. Relative audio paths are resolved
against the manifest's folder. Validation errors name the row and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audiodistill.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
SPLITS = ("train", "dev", "test")
ROWS_PER_PIECE = 10_000  # CSV and Parquet manifests are read this many rows at a time


class ManifestError(UserError, ValueError):
    """A manifest row is invalid; the message names the source, row and field."""


@dataclass(frozen=True)
class Utterance:
    id: str  # unique within a corpus; pseudo-labels are keyed by it
    audio: str  # absolute path of the audio file ("" when audio_bytes holds the audio)
    duration: float | None = None  # seconds, when known without decoding
    text: str | None = None  # reference transcript, when one exists
    split: str | None = None  # train / dev / test, when the corpus is split
    speaker: str | None = None  # speaker or voice name, for per-speaker figures
    meta: dict[str, Any] = field(default_factory=dict)  # anything else (voice, augmentation)
    audio_bytes: bytes | None = None  # encoded audio carried inline (HF datasets, Parquet)

    @property
    def source(self) -> bytes | str:
        """What `load_audio` reads: the inline bytes when there are any, else the path."""
        return self.audio_bytes if self.audio_bytes is not None else self.audio


def read_manifest(source: str | Path, split: str | None = None) -> list[Utterance]:
    """Read any supported source whole; optionally keep one split. Ids must be unique."""
    utterances = list(iter_manifest(source))
    _check_unique(utterances, Path(source))
    if split is not None:
        if split not in SPLITS:
            raise ManifestError(f"split must be one of {SPLITS}, got {split!r}")
        utterances = [u for u in utterances if u.split == split]
    return utterances


def iter_manifest(source: str | Path) -> Iterator[Utterance]:
    """The utterances of any supported source, in its order, read a bounded piece at a time
    (a corpus of millions of rows never sits in memory). Raises ManifestError at once for a
    missing or unsupported source; a bad row raises when reached. Ids are not checked for
    uniqueness here: that needs every id at once (`read_manifest` does it)."""
    path = Path(source)
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    if path.is_dir() and (path / "dataset_info.json").exists():
        rows = _hf_dataset_rows(path)
    elif path.is_dir() and (path / "manifest.jsonl").exists():
        return iter_manifest(path / "manifest.jsonl")
    elif path.is_dir():
        rows = _directory_rows(path)
    elif path.suffix == ".jsonl":
        rows = _jsonl_rows(path)
    elif path.suffix == ".csv":
        rows = _csv_rows(path)
    elif path.suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        raise ManifestError(
            f"{path}: unsupported manifest type (use a dir, .jsonl, .csv, .parquet)"
        )
    base = path if path.is_dir() else path.parent
    return (_validate(row, i, path, base) for i, row in enumerate(rows))


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> None:
    """Write JSONL with audio paths relative to the manifest's folder (portable corpora)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for u in utterances:
            row = {k: v for k, v in asdict(u).items() if k != "audio_bytes"}
            audio = Path(u.audio)
            if audio.is_absolute() and audio.is_relative_to(path.parent.resolve()):
                row["audio"] = str(audio.relative_to(path.parent.resolve()))
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class ManifestOptions:
    # a corpus in any form read_manifest takes (a directory of recordings, JSONL, CSV, ...)
    source: str
    # the JSONL manifest to write, audio paths relative to it
    out: str
    # share of utterances without a split that become "dev" (model choice while training)
    dev_fraction: float = 0.0
    # share that become "test": held out, never trained on, scored at the end
    test_fraction: float = 0.0
    # changes which utterances land in each split
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.dev_fraction, self.test_fraction) < 0 or (
            self.dev_fraction + self.test_fraction > 1
        ):
            raise ValueError("dev_fraction and test_fraction must be >= 0 and sum to <= 1")


def assign_splits(
    utterances: Sequence[Utterance], dev_fraction: float, test_fraction: float, seed: int = 0
) -> list[Utterance]:
    """Utterances without a split get one, drawn from a hash of (seed, id): the same id
    always lands in the same split, whatever else the corpus holds, so a grown corpus keeps
    its held-out recordings held out. Utterances that have a split keep it."""

    def draw(uid: str) -> float:
        digest = hashlib.sha256(f"{seed}:{uid}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    out = []
    for u in utterances:
        if u.split is None:
            x = draw(u.id)
            split = (
                "test"
                if x < test_fraction
                else "dev"
                if x < test_fraction + dev_fraction
                else "train"
            )
            u = dataclasses.replace(u, split=split)
        out.append(u)
    return out


def split_manifest(options: ManifestOptions) -> dict[str, int]:
    """The `manifest` command: read a corpus, assign splits, write JSONL; counts per split."""
    utterances = assign_splits(
        read_manifest(options.source), options.dev_fraction, options.test_fraction, options.seed
    )
    write_manifest(utterances, options.out)
    return dict(Counter(u.split or "none" for u in utterances))


def _validate(row: dict[str, Any], index: int, source: Path, base: Path) -> Utterance:
    where = f"{source}: row {index + 1}"
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected an object, got {type(row).__name__}")
    known = {"id", "audio", "duration", "text", "split", "speaker", "meta", "audio_bytes"}
    uid = row.get("id")
    if not isinstance(uid, str) or not uid.strip():
        raise ManifestError(f"{where}: field 'id' must be a non-empty string, got {uid!r}")
    audio, audio_bytes = row.get("audio"), row.get("audio_bytes")
    if audio_bytes is None and (not isinstance(audio, str) or not audio):
        raise ManifestError(f"{where}: field 'audio' must be a path, got {audio!r}")
    if isinstance(audio, str) and audio and not Path(audio).is_absolute():
        audio = str((base / audio).resolve())
    duration = row.get("duration")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise ManifestError(f"{where}: field 'duration' must be seconds >= 0, got {duration!r}")
    for name in ("text", "speaker"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise ManifestError(f"{where}: field '{name}' must be a string, got {row[name]!r}")
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: field 'split' must be one of {SPLITS}, got {split!r}")
    meta = dict(row.get("meta") or {})
    meta.update({k: v for k, v in row.items() if k not in known})
    return Utterance(
        id=uid,
        audio=audio or "",
        duration=None if duration is None else float(duration),
        text=row.get("text"),
        split=split,
        speaker=row.get("speaker"),
        meta=meta,
        audio_bytes=audio_bytes,
    )


def _check_unique(utterances: list[Utterance], source: Path) -> None:
    seen: dict[str, int] = {}
    for i, u in enumerate(utterances):
        if u.id in seen:
            raise ManifestError(
                f"{source}: row {i + 1}: field 'id' {u.id!r} repeats row {seen[u.id] + 1}"
            )
        seen[u.id] = i


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}: row {i + 1}: not valid JSON ({err.msg})") from err


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pandas as pd

    dtypes = {"id": str, "text": str, "speaker": str}
    with pd.read_csv(path, dtype=dtypes, chunksize=ROWS_PER_PIECE) as pieces:
        for frame in pieces:
            yield from _frame_rows(frame)


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_PIECE):
        yield from _frame_rows(batch.to_pandas())


def _frame_rows(frame) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def _directory_rows(path: Path) -> Iterator[dict[str, Any]]:
    found = False
    for file in _audio_files(path):
        found = True
        # audio relative to the directory, as in a manifest file (resolved against it later)
        relative = file.relative_to(path)
        yield {"id": str(relative.with_suffix("")), "audio": str(relative)}
    if not found:
        raise ManifestError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)})")


def _audio_files(folder: Path) -> Iterator[Path]:
    """Audio files under `folder` in sorted path order, one directory listed at a time: the
    same order as sorting every path, without holding every path."""
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _audio_files(Path(entry.path))
        elif Path(entry.name).suffix.lower() in AUDIO_SUFFIXES:
            yield Path(entry.path)


def _hf_dataset_rows(path: Path) -> Iterator[dict[str, Any]]:
    """A `datasets` dataset saved to disk: audio stays encoded (bytes or path), not decoded."""
    try:
        import datasets
    except ImportError as err:
        raise ManifestError(
            f"{path}: reading a saved HF dataset needs `pip install datasets`"
        ) from err
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise ManifestError(f"{path}: a DatasetDict; point at one split's folder")
    if "audio" not in ds.column_names:
        raise ManifestError(f"{path}: no 'audio' column (columns: {ds.column_names})")
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    text_col = next((c for c in ("text", "sentence", "transcript") if c in ds.column_names), None)
    return (_hf_row(i, item, text_col) for i, item in enumerate(ds))  # read row by row


def _hf_row(index: int, item: dict[str, Any], text_col: str | None) -> dict[str, Any]:
    audio = item["audio"]
    local = audio.get("path") if audio.get("path") and Path(audio["path"]).is_file() else None
    return {
        "id": str(item.get("id", index)),
        "audio": local or "",
        "audio_bytes": None if local else audio.get("bytes"),
        "text": item.get(text_col) if text_col else None,
    }
