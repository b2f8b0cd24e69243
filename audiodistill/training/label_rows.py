"""Training rows from pseudo-label runs: read, filtered, held-out sentences dropped, checked.

What the driver of a distillation run does before any worker starts, so that every "cannot
train" error names its cause first; and the row form (plain Python values) the loop's
batches are made from.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from audiodistill.data.audio import load_audio
from audiodistill.data.label_filters import FilterOptions, apply_filters
from audiodistill.data.label_store import is_codec_run, read_labels
from audiodistill.data.manifest import ManifestError, read_manifest
from audiodistill.errors import DataError
from audiodistill.evaluation.wer import normalize_text
from audiodistill.training.distill_options import DataOptions

HELD_OUT_SPLITS = ("dev", "test")  # splits of extra label runs never trained on

# what distillation reads from a pseudo-label run (see audiodistill/data/label_store.py SCHEMA)
REQUIRED_COLUMNS = (
    "id", "audio", "duration", "split", "reference", "text", "token_ids", "topk_ids",
    "topk_logprobs", "avg_logprob", "no_speech_prob", "compression_ratio", "wer", "error",
)  # fmt: skip
# what codec distillation reads from a codec pseudo-label run (audiodistill/data/label_store.py)
CODEC_REQUIRED_COLUMNS = ("id", "audio", "duration", "split", "codes", "latents", "error")


# per-token and per-frame arrays: what makes a label row large; the driver never reads them
# for the whole corpus, the workers stream them (pipelines/distill.py)
HEAVY_COLUMNS = ("token_ids", "topk_ids", "topk_logprobs", "codes", "latents")
SAMPLE_ROWS = 1000  # rows with every column for a student's check of the labels
STREAM_BATCH_ROWS = 512  # label rows a training worker reads from a shard at a time


@dataclass(frozen=True)
class TrainingRuns:
    """Where the training rows come from: each pseudo-label run with its role and repeat."""

    runs: tuple[str, ...]  # `labels`, then each of extra_labels
    repeats: tuple[int, ...]  # times each run's rows appear per epoch
    held_out: frozenset[str]  # normalized dev/test sentences never trained on


def worker_of(utterance_id: str, workers: int) -> int:
    """The training worker that owns a row: a stable hash of its id, the same on every node."""
    return zlib.crc32(str(utterance_id).encode()) % workers


def training_runs(options: DataOptions) -> TrainingRuns:
    runs = (options.labels, *options.extra_labels)
    if len(options.repeat) > len(runs) or any(r < 1 for r in options.repeat):
        raise DataError("data.repeat: one count >= 1 per run (labels, then extra_labels)")
    repeats = (*options.repeat, *[1] * (len(runs) - len(options.repeat)))
    return TrainingRuns(runs, repeats, frozenset(_held_out_texts(options.holdout)))


def select_training(
    rows: pd.DataFrame, run_index: int, options: DataOptions, held_out: frozenset[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of run `run_index` that train, and how many each rule dropped.

    Row by row, so the driver (on the light columns of every row) and the training workers
    (on the rows they stream) select exactly the same rows. Run 0 (`labels`) trains on its
    train split; extra runs on every split but their dev and test ones.
    """
    if run_index == 0:
        in_train = (
            rows["split"] == options.train_split
            if options.train_split is not None
            else rows["split"] != options.dev_split
        )
    else:
        in_train = ~rows["split"].isin(HELD_OUT_SPLITS)
    codec = "codes" in rows or rows.attrs.get("codec", False)  # light rows lack the codes
    kept, dropped = _filter(rows[in_train], options.filters, codec)
    dropped["held_out_sentence"] = 0
    if held_out:  # normalizing costs ~0.1 ms a row: only when there is something to match
        leaks = kept["reference"].fillna("").map(normalize_text).isin(held_out)
        kept, dropped["held_out_sentence"] = kept[~leaks], int(leaks.sum())
    no_audio = kept["audio"].fillna("") == ""
    too_long = kept["duration"] > options.max_duration
    dropped["no_audio_file"] = int(no_audio.sum())
    dropped["too_long"] = int((too_long & ~no_audio).sum())
    return kept[~no_audio & ~too_long].reset_index(drop=True), dropped


def load_training_rows(
    options: DataOptions, light: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, dev) label rows, filtered; DataError naming the cause when nothing can train.

    `light`: train rows without HEAVY_COLUMNS (what a driver needs to check, count and fit
    an LM), except in `train.attrs["sample"]`: up to SAMPLE_ROWS kept rows with every column.
    Dev rows always have every column (dev is small).
    """
    sources = training_runs(options)
    labels = _read_run(Path(options.labels), light)
    dev = labels.iloc[:0]
    if options.dev_split:
        dev = _dev_rows(_read_dev(Path(options.labels), options), options)
    parts, dropped = [], {}
    for i, run in enumerate(sources.runs):
        rows = labels if i == 0 else _read_run(Path(run), light)
        kept, counts = select_training(rows, i, options, sources.held_out)
        parts.append(kept)
        dropped = {k: dropped.get(k, 0) + v * sources.repeats[i] for k, v in counts.items()}
    if not len(parts[0]) + sum(map(len, parts[1:])):
        _nothing_to_train(labels, options, dropped)
    _check_unique_ids(parts)
    kept = pd.concat(
        [part for part, n in zip(parts, sources.repeats, strict=True) for _ in range(n)],
        ignore_index=True,
    )
    kept.attrs["dropped"] = dropped  # per-rule counts, for the run's summary
    kept.attrs["sample"] = _sample(sources, options) if light else kept.head(SAMPLE_ROWS)
    return kept, dev


def stream_training_rows(
    sources: TrainingRuns,
    options: DataOptions,
    rank: int,
    workers: int,
    rng: np.random.Generator,
) -> Iterator[dict[str, Any]]:
    """One epoch of worker `rank`'s training rows, read from the label shards as they go.

    Every run's shards (each as often as data.repeat says) in a random order, each read a
    record batch at a time and passed through `select_training` (the driver's selection),
    keeping the rows `worker_of` gives this worker: memory holds one record batch, never
    the corpus. Rows come out as `training_row`s (audio still a path). `sources` is
    `training_runs(options)`, made once per worker (it reads the holdout manifests).
    """
    files = [
        (i, path)
        for i, (run, repeat) in enumerate(zip(sources.runs, sources.repeats, strict=True))
        for path in label_files(Path(run))
        for _ in range(repeat)
    ]
    for k in rng.permutation(len(files)):
        run_index, path = files[k]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=STREAM_BATCH_ROWS):
            rows = batch.to_pandas()
            rows = rows[rows["id"].map(lambda i: worker_of(i, workers) == rank).astype(bool)]
            rows, _ = select_training(rows, run_index, options, sources.held_out)
            for record in rows.to_dict(orient="records"):
                yield training_row(record)


def _nothing_to_train(labels: pd.DataFrame, options: DataOptions, dropped: dict) -> None:
    if options.train_split is not None:
        in_split = labels["split"] == options.train_split
    else:
        in_split = labels["split"] != options.dev_split
    if not in_split.any() and not options.extra_labels:
        splits = sorted(labels["split"].dropna().unique())
        raise DataError(
            f"{options.labels}: no rows in split {options.train_split!r} (splits present: "
            f"{splits}); set data.train_split (null: every row not in data.dev_split)"
        )
    counts = ", ".join(f"{k} {v}" for k, v in dropped.items())
    raise DataError(
        f"{options.labels}: all {sum(dropped.values())} rows of split {options.train_split!r} "
        f"were filtered out (dropped: {counts}); loosen data.filters or data.max_duration"
    )


def _check_unique_ids(parts: Sequence[pd.DataFrame]) -> None:
    ids = pd.concat([part["id"] for part in parts], ignore_index=True)
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise DataError(
            f"data.extra_labels: id {duplicated.iloc[0]!r} is in more than one pseudo-label run; "
            "ids must be unique across the runs trained on together"
        )


def _sample(sources: TrainingRuns, options: DataOptions) -> pd.DataFrame:
    """Up to SAMPLE_ROWS training rows with every column, from the first shards of each run."""
    rows = []
    for i, run in enumerate(sources.runs):
        first = label_files(Path(run))[0]
        kept, _ = select_training(pq.read_table(first).to_pandas(), i, options, sources.held_out)
        rows.append(kept.head(SAMPLE_ROWS))
    return pd.concat(rows, ignore_index=True).head(SAMPLE_ROWS)


def _held_out_texts(manifests: Sequence[str]) -> set[str]:
    """Normalized dev and test sentences of these corpora (empty texts never match)."""
    texts = set()
    for manifest in manifests:
        try:
            utterances = read_manifest(manifest)
        except ManifestError as err:
            raise DataError(f"data.holdout: {err}") from err
        texts |= {normalize_text(u.text or "") for u in utterances if u.split in ("dev", "test")}
    return texts - {""}


def label_files(run_dir: Path) -> list[Path]:
    """The Parquet shards of a pseudo-label run, in order; DataError when there are none."""
    if not run_dir.is_dir():
        raise DataError(f"data.labels: {run_dir} does not exist (run `audiodistill pseudo-label`)")
    files = sorted((run_dir / "shards").glob("shard-*.parquet"))
    if not files:
        raise DataError(f"{run_dir}: no pseudo-label shards (run `pseudo-label` first)")
    return files


def _read_run(run_dir: Path, light: bool = False) -> pd.DataFrame:
    columns = pq.read_schema(label_files(run_dir)[0]).names
    required = CODEC_REQUIRED_COLUMNS if "codes" in columns else REQUIRED_COLUMNS
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(
            f"{run_dir}: pseudo-label shards lack column(s) {', '.join(missing)}; "
            "they were written by another tool or version (relabel with `pseudo-label`)"
        )
    wanted = [c for c in columns if not (light and c in HEAVY_COLUMNS)]
    labels = read_labels(run_dir, columns=wanted)
    labels.attrs["codec"] = "codes" in columns
    return labels


def _read_dev(run_dir: Path, options: DataOptions) -> pd.DataFrame:
    """The dev split's rows with every column, read without the rest of the run."""
    split = [("split", "=", options.dev_split)]
    tables = [pq.read_table(f, filters=split) for f in label_files(run_dir)]
    return pa.concat_tables(tables).to_pandas()


def _filter(
    rows: pd.DataFrame, options: FilterOptions, codec: bool
) -> tuple[pd.DataFrame, dict]:
    """The ASR filters; codec labels have no transcript to judge, only failed rows drop."""
    if not codec:
        return apply_filters(rows, options)
    failed = rows["error"].notna()
    return rows[~failed].reset_index(drop=True), {"failed": int(failed.sum())}


def _dev_rows(labels: pd.DataFrame, options: DataOptions) -> pd.DataFrame:
    """Dev rows with a `reference`: the human transcript where there is one (then the teacher's
    quality does not matter), else the pseudo-label, kept only if it passes the filters."""
    dev = labels[(labels["split"] == options.dev_split) & labels["error"].isna()]
    dev = dev[dev["audio"].fillna("") != ""]
    if is_codec_run(dev):  # scored against the audio itself: no reference text needed
        return dev.sort_values("id").reset_index(drop=True)
    has_ref = dev["reference"].fillna("").str.strip() != ""
    kept_ids = set(apply_filters(dev[~has_ref], options.filters)[0]["id"])
    dev = dev[has_ref | dev["id"].isin(kept_ids)].copy()
    dev["reference"] = dev["reference"].where(has_ref, dev["text"])
    return dev.sort_values("id").reset_index(drop=True)


def training_row(record: dict[str, Any]) -> dict[str, Any]:
    """A label row as plain Python values; Arrow and pandas hand list columns over as arrays."""

    def items(values) -> list:
        return [] if values is None else list(values)

    def ints(values) -> list[int]:
        return [int(v) for v in items(values)]

    if "codes" in record:
        return _codec_training_row(record)
    row = {
        "id": str(record["id"]),
        "audio": str(record["audio"]),
        "duration": float(record["duration"]),
        "text": str(record["text"] or ""),
        "token_ids": ints(record["token_ids"]),
        "topk_ids": [ints(r) for r in items(record["topk_ids"])],
        "topk_logprobs": [[float(p) for p in r] for r in items(record["topk_logprobs"])],
    }
    if "reference" in record:
        row["reference"] = str(record["reference"] or "")
    return row


def _codec_training_row(record: dict[str, Any]) -> dict[str, Any]:
    """A codec label row: codes [n_q][T] ints, latents [D][T] floats (or None)."""
    latents = record.get("latents")
    return {
        "id": str(record["id"]),
        "audio": str(record["audio"]),
        "duration": float(record["duration"]),
        "codes": [[int(c) for c in row] for row in record["codes"]],
        "latents": None if latents is None else [[float(x) for x in row] for row in latents],
    }


def with_audio(rows: Sequence[dict]) -> list[dict]:
    """The rows with `audio` decoded from its path to 16 kHz float32."""
    return [dict(r, audio=load_audio(r["audio"])) for r in rows]
