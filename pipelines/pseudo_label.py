"""Ray job: pseudo-label a corpus with a pool of teacher actors.

Ray Data turns the pending shards into a stream fed to an actor pool (`workers` actors, each
holding one teacher). Each actor writes its shard file itself, atomically, so the driver
never holds the labels in memory. Ray Data restarts an actor whose process or node died
and retries its shard on another; a retried shard overwrites the same file with the same
rows, so nothing is duplicated, and a rerun of the whole job skips shards already on disk.
Every try at a shard leaves a record in `<out>/attempts/` (node, process, start and end), so
a retry after a lost node shows: a try that never finished, then one elsewhere that did.

Multi-node: `out` and the audio must be on storage every node sees (NFS, a mounted bucket).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from audiodistill.config import save_config
from audiodistill.errors import DataError
from audiodistill.labelling import (
    PseudoLabelOptions,
    ShardResult,
    label_shard,
    plan_shards,
    summarize,
    write_plan,
)
from audiodistill.labels import finished_shards
from audiodistill.manifest import read_manifest

log = logging.getLogger(__name__)

ATTEMPTS = "attempts"  # <out>/attempts/: one JSON record per try at a shard


class ShardLabeller:
    """Ray Data actor: one teacher, loaded once, labels whole shards."""

    def __init__(self, teacher_options, run_dir: str):
        from audiodistill.teachers import build_teacher

        self.teacher = build_teacher(teacher_options)
        self.run_dir = run_dir

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        results = [
            self._label(int(i), pickle.loads(payload))
            for i, payload in zip(batch["index"], batch["payload"], strict=True)
        ]
        return {key: [r[key] for r in results] for key in results[0]}

    def _label(self, index: int, utterances) -> dict[str, Any]:
        import ray

        record = {
            "shard": index,
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "started": time.time(),
        }
        path = Path(self.run_dir) / ATTEMPTS / f"shard-{index:05d}.{uuid.uuid4().hex}.json"
        _write_record(path, record)
        result = label_shard(self.teacher, utterances, self.run_dir, index)
        _write_record(path, record | {"finished": time.time()})  # after the shard's rename
        return dataclasses.asdict(result)


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


def run(options: PseudoLabelOptions, progress: bool = True) -> dict[str, Any]:
    """Label every utterance not yet in `options.out`; return the run's summary."""
    utterances = read_manifest(options.manifest, options.split)[: options.limit]
    if not utterances:
        raise DataError(f"{options.manifest}: no utterances to label (split={options.split})")
    run_dir = Path(options.out).resolve()
    if options.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    write_plan(run_dir, utterances, options.shard_size, options.overwrite)
    save_config(options, run_dir / "config.yaml")
    shards = plan_shards(utterances, options.shard_size)
    done = finished_shards(run_dir)
    todo = [i for i in range(len(shards)) if i not in done]
    if done:
        log.info("resuming: %d of %d shards already done", len(done), len(shards))
    start = time.perf_counter()
    results = _label_on_ray(options, shards, todo, run_dir, progress) if todo else []
    return summarize(run_dir, options.filters, time.perf_counter() - start, results)


def _label_on_ray(options, shards, todo, run_dir: Path, progress: bool) -> list[ShardResult]:
    import ray
    from tqdm import tqdm

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    items = [{"index": i, "payload": pickle.dumps(shards[i])} for i in todo]
    labelled = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardLabeller,
        fn_constructor_kwargs={"teacher_options": options.teacher, "run_dir": str(run_dir)},
        batch_size=1,
        concurrency=options.workers,
        num_cpus=options.teacher.threads,
        num_gpus=options.gpus_per_worker,
    )
    results = []
    total = sum(len(shards[i]) for i in todo)
    with tqdm(total=total, unit="utt", desc="pseudo-label", disable=not progress) as bar:
        for row in labelled.iter_rows():
            result = ShardResult(**row)
            results.append(result)
            bar.update(result.items)
            bar.set_postfix(audio_s=f"{sum(r.audio_seconds for r in results):.0f}")
    return results


def init_ray() -> None:
    """Join the cluster in RAY_ADDRESS (or the job's cluster), else start a local instance."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), logging_level=logging.WARNING)
