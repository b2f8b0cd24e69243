"""Pseudo-labelling without Ray: the manifest's shards as a stream, decoding a shard, labelling
a decoded shard with a teacher, summarizing a run.

`pipelines/pseudo_label.py` runs these as Ray Data stages (one reader, CPU decode tasks, an
actor pool of teachers); everything they run lives here so it can be used and tested alone.
An ASR teacher gives transcript rows, a codec teacher codes-and-latents rows (see
`data/label_store.py`); sharding, resume and the summary's counts are the same for both,
the ASR filters apply to transcripts only.

Shard k is utterances [k * shard_size, (k + 1) * shard_size) of the manifest, counted after
the split filter and the limit. That is known from the manifest alone, read in order, so no
process ever holds the list of shards. A shard counts as done when its file holds exactly
the ids its rows now have; so a rerun over a manifest that grew at its end labels the new
shards only (and the last one again if it was short). Rows inserted or removed in the middle
shift every later shard: those shards are labelled again, each file replaced whole, and
shard files left past the manifest's new end stop the job (PlanMismatchError), since they
would hold ids twice.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE, AudioError, load_audio
from audiodistill.data.label_filters import FilterOptions, apply_filters
from audiodistill.data.label_store import (
    CODEC_SCHEMA,
    SCHEMA,
    finished_shards,
    shard_path,
    write_shard,
)
from audiodistill.data.manifest import SPLITS, Utterance, iter_manifest
from audiodistill.errors import UserError
from audiodistill.evaluation.wer import ErrorCounts, corpus_wer, wer
from audiodistill.teachers import CodecEncoding, CodecTeacher, TeacherOptions


@dataclass(frozen=True)
class PseudoLabelOptions:
    # manifest of the corpus to label (dir of audio, .jsonl/.csv/.parquet, saved HF dataset)
    manifest: str = "data/synth/manifest.jsonl"
    # run directory: shards/, config.yaml, summary.json, errors.jsonl
    out: str = "runs/pseudo_labels/tiny_en"
    # label only this split (train/dev/test); None labels everything
    split: str | None = None
    # label only the first N utterances (quick looks); None for all
    limit: int | None = None
    # utterances per shard: the unit of resume and of retry after a lost worker
    shard_size: int = 16
    # teacher actors in the pool (one per GPU, or CPU actors of `teacher.threads` threads)
    workers: int = 1
    # GPUs per actor (1 on a GPU cluster, 0 on CPU)
    gpus_per_worker: float = 0.0
    # decode tasks running at once: they decode and resample audio so the actors only label
    decoders: int = 2
    # CPUs each decode task reserves: 0 shares the cores CPU actors hold (a machine whose
    # cores are all actors'); 1 on a GPU cluster, so Ray spreads decoding over free cores
    decode_cpus: float = 0.0
    # start again from nothing instead of resuming a run with a different plan
    overwrite: bool = False
    # the teacher: backend, model, threads, batch size, top-k
    teacher: TeacherOptions = field(default_factory=TeacherOptions)
    # which labels count as kept in the summary (distillation applies the same filters)
    filters: FilterOptions = field(default_factory=FilterOptions)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")


class PlanMismatchError(UserError, RuntimeError):
    """The run directory holds shards of a different plan; resuming would mix corpora."""


@dataclass
class Shard:
    """Utterances [index * shard_size, (index + 1) * shard_size) of a manifest (after its
    split filter and limit): the unit of labelling, resume and retry."""

    index: int
    utterances: list[Utterance]


@dataclass
class DecodedShard:
    """A shard with its audio decoded: 16 kHz mono float32 per utterance, or the reason it
    could not be decoded (that item fails alone)."""

    index: int
    utterances: list[Utterance]
    audio: list[np.ndarray | None]
    errors: list[str | None]


def iter_shards(options: PseudoLabelOptions) -> Iterator[Shard]:
    """The manifest's shards in order, read lazily: the same manifest always gives the same
    shards, and one grown at its end gives the same first ones."""
    split = options.split
    utterances = (u for u in iter_manifest(options.manifest) if split is None or u.split == split)
    utterances = itertools.islice(utterances, options.limit)
    for index in itertools.count():
        chunk = list(itertools.islice(utterances, options.shard_size))
        if not chunk:
            return
        yield Shard(index, chunk)


def manifest_shards(options: PseudoLabelOptions, run_dir: str | Path) -> Iterator[Shard]:
    """Every shard of the manifest, done or not: a function of the manifest alone, so a
    reader that is run again yields the same stream.

    Raises PlanMismatchError at the manifest's end if shard files lie past it (rows were
    removed): they hold ids that the shards before them, labelled again, hold too.
    """
    shards = 0
    for shard in iter_shards(options):
        shards += 1
        yield shard
    past_end = sorted(i for i in finished_shards(run_dir) if i >= shards)
    if past_end:
        raise PlanMismatchError(
            f"{run_dir}: {len(past_end)} shard files from shard {past_end[0]} on lie past the "
            f"end of {options.manifest} ({shards} shards): rows were removed from it. Delete "
            "those files, or use overwrite=true to start over"
        )


def shard_is_done(run_dir: str | Path, shard: Shard) -> bool:
    """Whether the shard's file exists and holds exactly its ids, in order."""
    import pyarrow.parquet as pq

    path = shard_path(run_dir, shard.index)
    if not path.exists():
        return False
    ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    return ids == [u.id for u in shard.utterances]


def write_plan(run_dir: Path, options: PseudoLabelOptions) -> None:
    """Record how the manifest is cut into shards; refuse to resume a run cut otherwise.

    The manifest itself is not recorded: each shard is checked against its ids instead, so
    a manifest that grew (or moved) resumes where it stopped.
    """
    plan = {"shard_size": options.shard_size, "split": options.split, "limit": options.limit}
    path = run_dir / "plan.json"
    if path.exists() and not options.overwrite:
        old = json.loads(path.read_text())
        # `k in old`: a plan from before split and limit were recorded has the size alone
        changed = {k: (old[k], v) for k, v in plan.items() if k in old and old[k] != v}
        if changed:
            raise PlanMismatchError(
                f"{run_dir} holds a run cut into shards otherwise ((was, now): {changed}); "
                "use another `out`, or overwrite=true to start over"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=2))


@dataclass
class ShardResult:
    """What a labelled shard reports back to the driver (progress and throughput)."""

    index: int
    items: int
    failed: int
    audio_seconds: float
    compute_seconds: float
    skipped: bool = False  # its file was done already: nothing labelled


@dataclass
class RunProgress:
    """What the driver keeps of the shards labelled so far: sums, never one entry per shard."""

    items: int = 0
    audio_seconds: float = 0.0
    first_shard_seconds: float | None = None  # from the start to the first labelled shard

    def add(self, result: ShardResult, elapsed_seconds: float) -> None:
        if result.skipped:
            return
        self.items += result.items
        self.audio_seconds += result.audio_seconds
        if self.first_shard_seconds is None:
            self.first_shard_seconds = elapsed_seconds


def decode_shard(shard: Shard) -> DecodedShard:
    """Decode and resample every utterance of a shard; an unreadable one fails alone."""
    audio, errors = [], []
    for u in shard.utterances:
        try:
            audio.append(load_audio(u.source))
            errors.append(None)
        except AudioError as err:
            audio.append(None)
            errors.append(str(err))
    return DecodedShard(shard.index, shard.utterances, audio, errors)


def label_decoded(teacher, shard: DecodedShard, run_dir: str | Path) -> ShardResult:
    """Label (transcribe or encode) a decoded shard and write its file atomically."""
    start = time.perf_counter()
    rows = [_base_row(u, teacher) for u in shard.utterances]
    good = []
    for row, audio, error in zip(rows, shard.audio, shard.errors, strict=True):
        row["error"] = error
        if audio is not None:
            row["duration"] = len(audio) / SAMPLE_RATE
            good.append((row, audio))
    codec = isinstance(teacher, CodecTeacher)
    audios = [audio for _, audio in good]
    if audios and codec:
        for (row, _), encoding in zip(good, teacher.encode(audios), strict=True):
            _fill_codec(row, encoding, teacher)
    elif audios:
        for (row, _), transcript in zip(good, teacher.transcribe(audios), strict=True):
            _fill(row, transcript)
    write_shard(run_dir, shard.index, rows, CODEC_SCHEMA if codec else SCHEMA)
    return ShardResult(
        index=shard.index,
        items=len(rows),
        failed=sum(r["error"] is not None for r in rows),
        audio_seconds=sum(r["duration"] or 0.0 for r in rows),
        compute_seconds=time.perf_counter() - start,
    )


def label_shard(
    teacher, utterances: Sequence[Utterance], run_dir: str | Path, index: int
) -> ShardResult:
    """Decode, label and write one shard in this process (no pipeline around it)."""
    return label_decoded(teacher, decode_shard(Shard(index, list(utterances))), run_dir)


def _base_row(u: Utterance, teacher) -> dict[str, Any]:
    return {
        "id": u.id,
        "audio": u.audio,
        "duration": None,
        "split": u.split,
        "speaker": u.speaker,
        "reference": u.text,
        "teacher": teacher.name,
        "teacher_revision": teacher.revision,
        "error": None,
    }


def _fill(row: dict[str, Any], transcript) -> None:
    row.update(
        text=transcript.text,
        token_ids=transcript.token_ids,
        topk_ids=transcript.topk_ids,
        topk_logprobs=transcript.topk_logprobs,
        avg_logprob=transcript.avg_logprob,
        no_speech_prob=transcript.no_speech_prob,
        compression_ratio=transcript.compression_ratio,
        wer=wer(row["reference"], transcript.text) if row["reference"] else None,
    )


def _fill_codec(row: dict[str, Any], encoding: CodecEncoding, teacher: CodecTeacher) -> None:
    if encoding.error is not None:
        row["error"] = encoding.error
        return
    row.update(
        codes=list(encoding.codes),  # a list of per-codebook arrays: a list<list<int32>>
        latents=None if encoding.latents is None else list(encoding.latents),
        frame_rate=teacher.frame_rate,
        bitrate=teacher.bitrate,
        n_q=teacher.n_q,
        codebook_size=teacher.codebook_size,
    )


def summarize(
    run_dir: str | Path, filters: FilterOptions, wall_seconds: float, progress: RunProgress
) -> dict[str, Any]:
    """The end-of-job summary: written to summary.json and errors.jsonl, and returned.

    Read one shard file at a time, so a run of millions of rows is summed in bounded memory.
    Throughput counts only audio labelled by this run (a resumed run skips finished shards).
    """
    run_dir = Path(run_dir)
    totals = _Totals()
    with (run_dir / "errors.jsonl").open("w") as errors:
        for labels in _label_pieces(run_dir):
            failed = labels[labels["error"].notna()]
            for row in failed[["id", "audio", "error"]].to_dict(orient="records"):
                errors.write(json.dumps(row) + "\n")
            totals.add(labels, filters)
    summary = {
        "items": totals.items,
        "labelled_this_run": progress.items,
        "failed": totals.failed,
        "kept": totals.kept,
        "dropped": {k: v for k, v in totals.dropped.items() if k != "failed"},
        "audio_hours": totals.audio_seconds / 3600,
        "wall_seconds": wall_seconds,
        "first_shard_seconds": progress.first_shard_seconds,
        "audio_seconds_per_second": progress.audio_seconds / max(wall_seconds, 1e-9),
        "output": str(run_dir.resolve()),
        "teacher": sorted(totals.teachers),
    }
    if totals.is_codec:
        summary["codec"] = totals.codec
    else:
        summary["wer_by_split"] = {
            split: {"wer": counts.wer, "utterances": n}
            for split, (counts, n) in sorted(totals.wer_by_split.items())
        }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# the per-token arrays are most of a shard's bytes and no figure of the summary needs them
_NOT_SUMMARIZED = {"token_ids", "topk_ids", "topk_logprobs", "latents"}


# rows the summary reads at once: a bounded piece, large enough that pandas' cost per call
# is small beside the rows
SUMMARY_ROWS = 20_000


def _label_pieces(run_dir: Path) -> Iterator:
    """A run's label rows without the per-token arrays, as DataFrames of about SUMMARY_ROWS
    rows (whole shards), in shard order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, rows = [], 0
    for index in sorted(finished_shards(run_dir)):
        path = shard_path(run_dir, index)
        columns = [c for c in pq.read_schema(path).names if c not in _NOT_SUMMARIZED]
        tables.append(pq.read_table(path, columns=columns))
        rows += tables[-1].num_rows
        if rows >= SUMMARY_ROWS:
            yield pa.concat_tables(tables).to_pandas()
            tables, rows = [], 0
    if tables:
        yield pa.concat_tables(tables).to_pandas()


@dataclass
class _Totals:
    """A run's figures, added up shard by shard."""

    items: int = 0
    failed: int = 0
    kept: int = 0
    audio_seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)
    teachers: set = field(default_factory=set)
    # split -> (word error counts, utterances): teacher WER against references
    wer_by_split: dict = field(default_factory=dict)
    is_codec: bool = False  # labelled by a codec teacher: codes, no transcripts
    codec: dict = field(default_factory=dict)  # the codec's rates and frames (codec runs)

    def add(self, labels, filters: FilterOptions) -> None:
        self.items += len(labels)
        self.failed += int(labels["error"].notna().sum())
        self.audio_seconds += float(labels["duration"].fillna(0).sum())
        self.teachers.update(labels["teacher"].dropna())
        if "codes" in labels.columns:  # no transcript to judge: every encoded item is kept
            kept = labels[labels["error"].isna()]
            self.is_codec = True
            self.codec = _codec_summary(kept, self.codec)
        else:
            kept, dropped = apply_filters(labels, filters)
            self.dropped.update(dropped)
            self._add_wer(labels[labels["error"].isna()])
        self.kept += len(kept)

    def _add_wer(self, labels) -> None:
        """Teacher WER against references, per split (only rows that have a reference)."""
        with_ref = labels[labels["reference"].fillna("").str.len() > 0]
        for split, group in with_ref.groupby(with_ref["split"].fillna("all")):
            counts = corpus_wer(list(group["reference"]), list(group["text"].fillna("")))
            old, n = self.wer_by_split.get(str(split), (ErrorCounts(0, 0, 0, 0), 0))
            self.wer_by_split[str(split)] = (old + counts, n + len(group))


def _codec_summary(labels, so_far: dict) -> dict:
    """The codec's rates (constant per teacher) and how many code frames the run holds."""
    if labels.empty:
        return so_far
    first = labels.iloc[0]
    frames = int(sum(len(codes[0]) for codes in labels["codes"]))
    return {
        "frame_rate": float(first["frame_rate"]),
        "bitrate": float(first["bitrate"]),
        "n_q": int(first["n_q"]),
        "codebook_size": int(first["codebook_size"]),
        "frames": frames + so_far.get("frames", 0),
    }
