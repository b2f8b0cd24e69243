"""Pseudo-label shards: the Parquet layout between pseudo-labelling and distillation.

A run directory holds `shards/shard-00000.parquet ...`, one row per input utterance (failed
items too, with `error` set), in `SCHEMA` for ASR teachers or `CODEC_SCHEMA` for codec
teachers (same source and provenance columns, different label columns), plus `plan.json`,
`config.yaml`, `summary.json` and `errors.jsonl`. A shard file appears by atomic rename only
when complete, so a shard either exists whole or not at all: that is what makes reruns skip
finished work and redo lost work without duplicating any id.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_SOURCE = [
    ("id", pa.string()),
    ("audio", pa.string()),  # path of the source audio ("" when it came inline)
    ("duration", pa.float64()),  # seconds of decoded 16 kHz audio (null when it failed)
    ("split", pa.string()),
    ("speaker", pa.string()),
    ("reference", pa.string()),  # reference transcript, when the corpus has one
]
_PROVENANCE = [
    ("teacher", pa.string()),
    ("teacher_revision", pa.string()),
    ("error", pa.string()),  # why this item failed; null when it succeeded
]
SCHEMA = pa.schema(
    _SOURCE
    + [
        ("text", pa.string()),  # the teacher's transcript: the pseudo-label
        ("token_ids", pa.list_(pa.int32())),
        ("topk_ids", pa.list_(pa.list_(pa.int32()))),  # [tokens + 1, k]
        ("topk_logprobs", pa.list_(pa.list_(pa.float32()))),  # [tokens + 1, k], temperature 1
        ("avg_logprob", pa.float64()),
        ("no_speech_prob", pa.float64()),
        ("compression_ratio", pa.float64()),
        ("wer", pa.float64()),  # normalized WER of text vs reference (null without one)
    ]
    + _PROVENANCE
)
# nested lists read back with pandas as arrays of row arrays: `codec_arrays` stacks them
CODEC_SCHEMA = pa.schema(
    _SOURCE
    + [
        ("codes", pa.list_(pa.list_(pa.int32()))),  # [n_q, T] codebook indices
        ("latents", pa.list_(pa.list_(pa.float32()))),  # [D, T] pre-quantization (or null)
        ("frame_rate", pa.float64()),  # code frames per second
        ("bitrate", pa.float64()),  # bits per second: n_q * log2(codebook_size) * frame_rate
        ("n_q", pa.int32()),  # codebooks per frame
        ("codebook_size", pa.int32()),  # entries per codebook
    ]
    + _PROVENANCE
)


def shard_path(run_dir: str | Path, index: int) -> Path:
    return Path(run_dir) / "shards" / f"shard-{index:05d}.parquet"


def write_shard(
    run_dir: str | Path, index: int, rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA
) -> Path:
    """Write one shard atomically: readers and resumes never see a partial file."""
    final = shard_path(run_dir, index)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema)
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def finished_shards(run_dir: str | Path) -> set[int]:
    """Indices of shards already written completely."""
    folder = Path(run_dir) / "shards"
    if not folder.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in folder.glob("shard-*.parquet")}


def read_labels(run_dir: str | Path, columns: list[str] | None = None):
    """All rows of a run (failed ones included) as a pandas DataFrame."""
    files = sorted((Path(run_dir) / "shards").glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no pseudo-label shards (run `pseudo-label` first)")
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files).to_pandas()


def is_codec_run(labels) -> bool:
    """Whether labels (a DataFrame from `read_labels`) come from a codec teacher."""
    return "codes" in labels.columns


def codec_arrays(row) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes [n_q, T] int32, latents [D, T] float32 or None) of one successful codec row."""
    codes = np.stack(row["codes"]).astype(np.int32)
    latents = row["latents"]
    return codes, None if latents is None else np.stack(latents).astype(np.float32)
