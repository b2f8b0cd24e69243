"""Pseudo-labelling without Ray: plan shards, label one shard with a teacher, summarize a run.

`pipelines/pseudo_label.py` fans shards out over a Ray actor pool; everything it runs per
shard lives here so it can be used and tested alone. An ASR teacher gives transcript rows,
a codec teacher codes-and-latents rows (see `audiodistill/labels.py`); sharding, resume and
the summary's counts are the same for both, the ASR filters apply to transcripts only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiodistill.audio import SAMPLE_RATE, AudioError, load_audio
from audiodistill.errors import UserError
from audiodistill.filters import FilterOptions, apply_filters
from audiodistill.labels import CODEC_SCHEMA, SCHEMA, is_codec_run, read_labels, write_shard
from audiodistill.manifest import Utterance
from audiodistill.metrics import corpus_wer, wer
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
    # start again from nothing instead of resuming a run with a different plan
    overwrite: bool = False
    # the teacher: backend, model, threads, batch size, top-k
    teacher: TeacherOptions = field(default_factory=TeacherOptions)
    # which labels count as kept in the summary (distillation applies the same filters)
    filters: FilterOptions = field(default_factory=FilterOptions)


class PlanMismatchError(UserError, RuntimeError):
    """The run directory holds shards of a different plan; resuming would mix corpora."""


def plan_shards(utterances: Sequence[Utterance], shard_size: int) -> list[list[Utterance]]:
    """Consecutive, fixed shards: the same manifest always gives the same shards."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [list(utterances[i : i + shard_size]) for i in range(0, len(utterances), shard_size)]


def write_plan(run_dir: Path, utterances: Sequence[Utterance], shard_size: int, overwrite: bool):
    """Record what the shards mean; refuse to resume over a different plan."""
    ids = "\n".join(u.id for u in utterances).encode()
    plan = {
        "ids_sha256": hashlib.sha256(ids).hexdigest(),
        "items": len(utterances),
        "shard_size": shard_size,
    }
    path = run_dir / "plan.json"
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        if old != plan:
            raise PlanMismatchError(
                f"{run_dir} holds a run over other inputs ({old['items']} items, shard size "
                f"{old['shard_size']}); use another `out`, or overwrite=true to start over"
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


def label_shard(teacher, utterances: Sequence[Utterance], run_dir: str | Path, index: int):
    """Decode, label (transcribe or encode) and write one shard; a bad item fails alone."""
    start = time.perf_counter()
    rows, audios, good = [], [], []
    for u in utterances:
        row = _base_row(u, teacher)
        try:
            audio = load_audio(u.source)
        except AudioError as err:
            row["error"] = str(err)
        else:
            row["duration"] = len(audio) / SAMPLE_RATE
            audios.append(audio)
            good.append(row)
        rows.append(row)
    codec = isinstance(teacher, CodecTeacher)
    if audios and codec:
        for row, encoding in zip(good, teacher.encode(audios), strict=True):
            _fill_codec(row, encoding, teacher)
    elif audios:
        for row, transcript in zip(good, teacher.transcribe(audios), strict=True):
            _fill(row, transcript)
    write_shard(run_dir, index, rows, CODEC_SCHEMA if codec else SCHEMA)
    return ShardResult(
        index=index,
        items=len(rows),
        failed=sum(r["error"] is not None for r in rows),
        audio_seconds=sum(r["duration"] or 0.0 for r in rows),
        compute_seconds=time.perf_counter() - start,
    )


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
    run_dir: str | Path, filters: FilterOptions, wall_seconds: float, results: list[ShardResult]
) -> dict[str, Any]:
    """The end-of-job summary: written to summary.json and errors.jsonl, and returned.

    Throughput counts only audio labelled by this run (a resumed run skips finished shards).
    """
    run_dir = Path(run_dir)
    labels = read_labels(run_dir)
    failed = labels[labels["error"].notna()]
    if is_codec_run(labels):  # no transcript to judge: every encoded item is kept
        kept, dropped = labels[labels["error"].isna()], {}
    else:
        kept, dropped = apply_filters(labels, filters)
    with (run_dir / "errors.jsonl").open("w") as out:
        for row in failed[["id", "audio", "error"]].to_dict(orient="records"):
            out.write(json.dumps(row) + "\n")
    audio_seconds = float(labels["duration"].fillna(0).sum())
    summary = {
        "items": int(len(labels)),
        "labelled_this_run": sum(r.items for r in results),
        "failed": int(len(failed)),
        "kept": int(len(kept)),
        "dropped": {k: v for k, v in dropped.items() if k != "failed"},
        "audio_hours": audio_seconds / 3600,
        "wall_seconds": wall_seconds,
        "audio_seconds_per_second": sum(r.audio_seconds for r in results) / max(wall_seconds, 1e-9),
        "output": str(run_dir.resolve()),
        "teacher": sorted(set(labels["teacher"].dropna())),
    }
    if is_codec_run(labels):
        summary["codec"] = _codec_summary(kept)
    else:
        summary["wer_by_split"] = _wer_by_split(labels[labels["error"].isna()])
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _codec_summary(labels) -> dict[str, float]:
    """The codec's rates (constant per teacher) and how many code frames the run holds."""
    if labels.empty:
        return {}
    first = labels.iloc[0]
    return {
        "frame_rate": float(first["frame_rate"]),
        "bitrate": float(first["bitrate"]),
        "n_q": int(first["n_q"]),
        "codebook_size": int(first["codebook_size"]),
        "frames": int(sum(len(codes[0]) for codes in labels["codes"])),
    }


def _wer_by_split(labels) -> dict[str, dict[str, float]]:
    """Teacher WER against references, per split (only rows that have a reference)."""
    with_ref = labels[labels["reference"].fillna("").str.len() > 0]
    out = {}
    for split, group in with_ref.groupby(with_ref["split"].fillna("all")):
        counts = corpus_wer(list(group["reference"]), list(group["text"].fillna("")))
        out[str(split)] = {"wer": counts.wer, "utterances": int(len(group))}
    return out
