"""Ray job: pseudo-label a corpus as a Ray Data stream, manifest to teacher to shard files.

  read      one task streams the manifest a piece at a time and emits its shards (shard k:
            utterances [k * shard_size, (k + 1) * shard_size); see teachers/shard_labelling.py
            for what a grown or edited manifest does), a few thousand utterances per row
  decode    CPU tasks (`decoders` at once) pass on the shards already on disk as such and
            decode and resample the others' audio to 16 kHz float32, one shard per block; an
            unreadable file fails that item only
  label     an actor pool (`workers` actors, each holding one teacher) labels decoded shards
            and writes each shard's file itself, atomically

The driver holds neither the manifest nor the labels: only per-shard results, summed as
they arrive, and Ray Data's backpressure bounds how many shards are in flight. Ray Data
restarts an actor whose process or node died and retries its shard on another; a retried
shard overwrites the same file with the same rows, so nothing is duplicated, and a rerun of
the whole job skips shards already on disk. Every try at a shard leaves a record in
`<out>/attempts/` (node, process, start and end), so a retry after a lost node shows: a try
that never finished, then one elsewhere that did.

Multi-node: `out`, the manifest and the audio must be on storage every node sees (NFS, a
mounted bucket).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from audiodistill.config import save_config
from audiodistill.data.label_store import finished_shards
from audiodistill.data.manifest import iter_manifest
from audiodistill.errors import DataError, UserError
from audiodistill.teachers.shard_labelling import (
    PseudoLabelOptions,
    RunProgress,
    ShardResult,
    decode_shard,
    label_decoded,
    manifest_shards,
    shard_is_done,
    summarize,
    write_plan,
)

log = logging.getLogger(__name__)

ATTEMPTS = "attempts"  # <out>/attempts/: one JSON record per try at a shard
PIECE_ROWS = 4096  # utterances (whole shards) the reader sends on at once


def run(options: PseudoLabelOptions, progress: bool = True) -> dict[str, Any]:
    """Label every utterance not yet in `options.out`; return the run's summary."""
    iter_manifest(options.manifest)  # a missing or unsupported manifest fails here, not in Ray
    run_dir = Path(options.out).resolve()
    if options.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    write_plan(run_dir, options)
    save_config(options, run_dir / "config.yaml")
    on_disk = len(finished_shards(run_dir))
    if on_disk:
        log.info("resuming: %d shards on disk are checked against the manifest", on_disk)
    start = time.perf_counter()
    labelled = _label_on_ray(options, run_dir, progress, start)
    if not finished_shards(run_dir):
        raise DataError(f"{options.manifest}: no utterances to label (split={options.split})")
    return summarize(run_dir, options.filters, time.perf_counter() - start, labelled)


def _label_on_ray(options, run_dir: Path, progress: bool, start: float) -> RunProgress:
    import ray
    from tqdm import tqdm

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    done = RunProgress()
    with tqdm(unit="utt", desc="pseudo-label", disable=not progress) as bar:
        try:
            for row in _pipeline(options, run_dir).iter_rows():
                done.add(ShardResult(**row), time.perf_counter() - start)
                bar.update(row["items"])
                bar.set_postfix(audio_s=f"{done.audio_seconds:.0f}")
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, UserError):  # a bad manifest row, shards past its end
                raise err.cause from None  # its message says where; Ray's trace does not help
            raise
    return done


def _pipeline(options: PseudoLabelOptions, run_dir: Path):
    """read -> decode -> label, as a lazy Ray Data dataset of per-shard results."""
    import ray

    labelled = (
        ray.data.read_datasource(
            _ManifestPieces(options, str(run_dir)),
            override_num_blocks=1,
            num_cpus=0,  # it mostly waits on backpressure
        )
        .map_batches(
            _decode_pending,
            fn_kwargs={"run_dir": str(run_dir)},
            batch_size=1,
            concurrency=options.decoders,
            num_cpus=options.decode_cpus,
        )
        .map_batches(
            ShardLabeller,
            fn_constructor_kwargs={"teacher_options": options.teacher, "run_dir": str(run_dir)},
            batch_size=1,
            concurrency=options.workers,
            num_cpus=options.teacher.threads,
            num_gpus=options.gpus_per_worker,
        )
    )
    # each shard its own block at every stage: Ray Data would otherwise join small outputs
    # into blocks of up to 128 MiB, so the read would send nothing until it had read that
    # much of the manifest, and a whole group of shards would go to one actor
    labelled.context.target_max_block_size = 1
    return labelled


class _ManifestPieces(Datasource):
    """The read stage: one task streams the manifest's shards, a piece of whole shards (about
    PIECE_ROWS utterances) per row.

    One task, because where a row falls (which shard) is known only by reading in order. It
    yields the same stream however often it runs, so Ray may run it again after a failure.
    Pieces rather than single shards: a piece is big enough to go to the object store, which
    Ray Data's backpressure bounds (Ray keeps objects under 100 KB in the driver's own
    memory, which a reader running ahead of the teachers would fill).
    """

    def __init__(self, options: PseudoLabelOptions, run_dir: str):
        super().__init__()
        self.options = options
        self.run_dir = run_dir

    def estimate_inmemory_data_size(self) -> None:
        return None  # unknown until the manifest is read, which is the point

    def get_read_tasks(self, parallelism: int, **_) -> list[ReadTask]:
        return [ReadTask(self._read, BlockMetadata(None, None, None, None))]

    def _read(self):
        shards = manifest_shards(self.options, self.run_dir)
        per_piece = max(1, PIECE_ROWS // self.options.shard_size)
        while piece := list(itertools.islice(shards, per_piece)):
            yield pa.table({"payload": [pickle.dumps(piece)]})


def _decode_pending(batch: dict[str, Any], run_dir: str) -> Iterator[dict[str, list]]:
    """The decode stage: pieces in; one row out per shard, each alone in its block: the
    shard with its audio decoded, or an empty payload if its file is done already. Always
    one row per shard, so a task run again yields the same shards in the same order."""
    for payload in batch["payload"]:
        for shard in pickle.loads(payload):
            decoded = b"" if shard_is_done(run_dir, shard) else pickle.dumps(decode_shard(shard))
            yield {"shard": [shard.index], "payload": [decoded]}


class ShardLabeller:
    """The label stage, a Ray Data actor: one teacher, loaded once, labels decoded shards."""

    def __init__(self, teacher_options, run_dir: str):
        from audiodistill.teachers import build_teacher

        self.teacher = build_teacher(teacher_options)
        self.run_dir = run_dir

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results = [
            self._label(pickle.loads(payload)) if payload else _done_already(int(index))
            for index, payload in zip(batch["shard"], batch["payload"], strict=True)
        ]
        return {key: [r[key] for r in results] for key in results[0]}

    def _label(self, shard) -> dict[str, Any]:
        import ray

        record = {
            "shard": shard.index,
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "started": time.time(),
        }
        name = f"shard-{shard.index:05d}.{uuid.uuid4().hex}.json"
        path = Path(self.run_dir) / ATTEMPTS / name
        _write_record(path, record)
        result = label_decoded(self.teacher, shard, self.run_dir)
        _write_record(path, record | {"finished": time.time()})  # after the shard's rename
        return dataclasses.asdict(result)


def _done_already(index: int) -> dict[str, Any]:
    return dataclasses.asdict(ShardResult(index, 0, 0, 0.0, 0.0, skipped=True))


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Write by rename, so a reader sees the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def shard_attempts(run_dir: str | Path) -> dict[int, list[dict[str, Any]]]:
    """Every recorded try at each shard, oldest first; a try without "finished" was cut off
    (its worker or node died) or is still running."""
    attempts: dict[int, list[dict[str, Any]]] = {}
    for path in (Path(run_dir) / ATTEMPTS).glob("shard-*.json"):
        record = json.loads(path.read_text())
        attempts.setdefault(record["shard"], []).append(record)
    return {i: sorted(a, key=lambda r: r["started"]) for i, a in sorted(attempts.items())}


def init_ray() -> None:
    """Join the cluster in RAY_ADDRESS (or the job's cluster), else start a local instance."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), logging_level=logging.WARNING)
