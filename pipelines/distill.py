"""Ray job: distill a student from pseudo-labels with Ray Train (TorchTrainer, DDP).

The driver checks the options and the labels (every "cannot train" error comes before any
worker starts) reading only their light columns (ids, paths, durations, text, filter
scores: no token or top-k arrays). Each worker then streams the label shards itself
(`training.label_rows.stream_training_rows`: shards in a random order, a record batch at a
time, the driver's row selection, `data.repeat`) and keeps the rows it owns (`worker_of`: a
hash of the id), so no process holds the corpus: a worker holds one window of rows
(`train.shuffle_rows`), bucketed by duration and shuffled, and loads each batch's audio
itself. Every worker reads the label columns of every row (small beside the audio).
Not a Ray Data stream, for two reasons. Ray Train tells Ray Data to leave the workers' CPUs
alone, so where the workers fill the CPUs (a CPU-only cluster; 2 workers on 2 cores here)
the Data read never got a CPU and training waited forever (tried). And an even Data split
cuts epochs of unequal step counts (batches are cut by seconds), where a worker that
starts its next epoch would wait for the others, which wait for it in DDP.

The loop itself is the library's (`audiodistill.training.loop.fit`); `RayTrainContext`
gives it the worker's rank, DDP placement and Ray Train's checkpoints. Checkpoints,
restarts and resume are Ray Train's (Train V2, the default in Ray 2.60):
`RunConfig(name="train", storage_path=<out>/ray)` persists every reported checkpoint and a
snapshot of the checkpoint list. When a worker dies, the controller restarts the worker
group (FailureConfig.max_failures times) and `ray.train.get_checkpoint()` returns the latest
checkpoint. When the whole job is rerun with the same `out`, the new controller finds the
snapshot under the same name and storage path and restores it the same way, so the step
count continues (with a fresh, seeded data order: the exact place in the epoch is not kept).
Keeping the best (by dev score: dev WER, or a non-ASR student's own dev metric) and the
latest checkpoint is CheckpointConfig's num_to_keep with dev_score as the score: Ray never
deletes the latest.

Multi-node: `out`, the labels and the audio must be on storage every node sees.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from audiodistill.config import save_config, to_dict
from audiodistill.errors import DataError
from audiodistill.students.registry import build_task
from audiodistill.training import loop
from audiodistill.training.distill_options import DistillOptions
from audiodistill.training.label_rows import (
    load_training_rows,
    stream_training_rows,
    training_row,
    training_runs,
    worker_of,
)
from audiodistill.training.loop import (
    StudentTask,
    TrainState,
    export_checkpoint,
    fit,
    load_checkpoint,
)
from pipelines.pseudo_label import init_ray

log = logging.getLogger(__name__)

RUN_NAME = "train"  # Ray Train run name under <out>/ray; the same name is what resumes
# the dev score of a checkpoint from a step without evaluation: the largest finite float, not
# infinity, because Ray keeps the checkpoint list as JSON, which writes infinity as null, and
# a rerun that found a null there failed at its first checkpoint instead of resuming
UNSCORED = sys.float_info.max


def run(options: DistillOptions) -> dict[str, Any]:
    """Train (or resume) the student in `options.out`, export the best, return a summary."""
    options = with_absolute_paths(options)
    task = build_task(options)
    train_rows, dev_rows = prepare(options, task)
    out = Path(options.out).resolve()
    _check_resumable(out, options)
    save_config(options, out / "config.yaml")
    start = time.perf_counter()
    result = _fit(options, out, dev_rows)
    best, metrics = _best_checkpoint(result, options.train.eval_every > 0)
    with best.as_directory() as directory:
        _export(task, Path(directory), out / "model", train_rows)
    summary = {
        "student": options.student,
        "steps": int(result.metrics.get("step", metrics.get("step", 0))),
        "early_stopped": bool(result.metrics.get("stopped", False)),
        "best_step": int(metrics.get("step", 0)),
        "best_dev_wer": metrics.get("dev_wer"),
        "best_dev_score": metrics.get("dev_score"),
        "samples_per_s": result.metrics.get("samples_per_s"),
        "train_utterances": len(train_rows),
        "dev_utterances": len(dev_rows),
        "dropped": train_rows.attrs.get("dropped", {}),
        "wall_seconds": time.perf_counter() - start,
        "model": str(out / "model"),
        "checkpoint": best.path,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def with_absolute_paths(options: DistillOptions) -> DistillOptions:
    """Label runs and teacher directories given relative to where the job started, made
    absolute: Ray Train workers run in a directory of their own, where a relative path names
    nothing (the workers read the label shards themselves)."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    data = options.data
    return dataclasses.replace(
        options,
        data=dataclasses.replace(
            data,
            labels=absolute(data.labels),
            extra_labels=tuple(absolute(p) for p in data.extra_labels),
            holdout=tuple(absolute(p) for p in data.holdout),
        ),
        codec=dataclasses.replace(options.codec, teacher=absolute(options.codec.teacher)),
        whisper_distil=dataclasses.replace(
            options.whisper_distil, teacher=absolute(options.whisper_distil.teacher)
        ),
        streaming=dataclasses.replace(
            options.streaming, teacher=absolute(options.streaming.teacher)
        ),
    )


def prepare(options: DistillOptions, task: StudentTask):
    """Filtered (train, dev) rows, or DataError saying why they cannot train this student.
    Train rows are light (no token or top-k arrays); the task checks a sample with every
    column."""
    train, dev = load_training_rows(options.data, light=True)
    try:
        task.check(train.attrs["sample"])
    except ValueError as err:
        raise DataError(f"{options.data.labels}: {err}") from err
    if options.train.eval_every > 0 and dev.empty:
        raise DataError(
            f"{options.data.labels}: no usable rows in dev split {options.data.dev_split!r} for "
            "dev WER; set data.dev_split to a split with rows, or train.eval_every=0"
        )
    workers = options.train.workers
    owners = set(train["id"].map(lambda i: worker_of(i, workers)))
    if len(owners) < workers:
        raise DataError(
            f"{len(train)} training rows cannot feed {workers} workers (a worker would get none)"
        )
    return train, dev.head(options.train.dev_limit)


def _check_resumable(out: Path, options: DistillOptions) -> None:
    """A run dir resumes only the run it holds: checkpoints of another student would not
    load, and ones trained on other data or another model would be continued silently as if
    they were this run's. Training options (steps, schedule, workers) may change."""
    saved = out / "config.yaml"
    if not saved.exists():
        return
    previous, current = yaml.safe_load(saved.read_text()) or {}, to_dict(options)
    if previous.get("student") != options.student:
        raise DataError(
            f"{out} holds a {previous.get('student')!r} run; use another out for "
            f"{options.student!r}"
        )
    for section in ("data", options.student.replace("-", "_")):
        if previous.get(section) != current.get(section):
            raise DataError(
                f"{out} holds a run with other {section} options; resuming it would continue "
                "that run: use another out, or delete the directory to start over"
            )


def _fit(options: DistillOptions, out: Path, dev_rows):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    init_ray()
    train = options.train
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={
            "options": options,
            "dev_rows": [training_row(r) for r in dev_rows.to_dict(orient="records")],
            "metrics_path": str(out / "metrics.jsonl"),
        },
        scaling_config=ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": train.cpus_per_worker, "GPU": int(train.use_gpu)},
        ),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=str(out / "ray"),
            checkpoint_config=CheckpointConfig(
                num_to_keep=train.keep_checkpoints,
                checkpoint_score_attribute="dev_score" if train.eval_every > 0 else None,
                checkpoint_score_order="min",
            ),
            failure_config=FailureConfig(max_failures=train.max_failures),
        ),
    )
    return trainer.fit()


def _best_checkpoint(result, by_dev_score: bool):
    """(checkpoint, its metrics): lowest dev score (earliest on a tie), else the latest."""
    kept = result.best_checkpoints or []
    scored = [(c, m) for c, m in kept if m.get("dev_score", UNSCORED) < UNSCORED]
    if by_dev_score and scored:
        return min(scored, key=lambda cm: (cm[1]["dev_score"], cm[1]["step"]))
    if result.checkpoint is None:
        raise RuntimeError("training reported no checkpoint")
    latest = [m for c, m in kept if c.path == result.checkpoint.path]
    return result.checkpoint, latest[0] if latest else dict(result.metrics)


def _export(task: StudentTask, checkpoint_dir: Path, model_dir: Path, train_rows) -> None:
    """Replace `model_dir` with the checkpoint's export, never leaving half a directory."""
    staging = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    export_checkpoint(task, checkpoint_dir, staging)
    task.finish_export(staging, train_rows)
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)


# --- on each Ray Train worker ------------------------------------------------------------


def train_worker(config: dict[str, Any]) -> None:
    """One DDP worker: the library's loop over this worker's rows of the label stream."""
    options: DistillOptions = config["options"]
    _log_progress()
    context = RayTrainContext()
    rng = np.random.default_rng([options.train.seed, context.rank])
    sources = training_runs(options.data)

    def epoch():
        return stream_training_rows(
            sources, options.data, context.rank, context.world_size, rng
        )

    metrics_path = Path(config["metrics_path"])
    fit(build_task(options), options.train, epoch, config["dev_rows"], context, metrics_path)


def _log_progress() -> None:
    """Send the loop's progress lines to the worker's stderr, which Ray shows the driver.

    A handler of its own: a Ray worker's root logger passes only warnings, and raising it
    would let every library in the worker log at INFO too.
    """
    log = logging.getLogger(loop.__name__)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class RayTrainContext:
    """`fit` on a Ray Train worker: its rank, DDP placement, Ray Train's checkpoints."""

    def __init__(self):
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()

    def prepare(self, model):
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def restore(self, model, optimizer, scheduler) -> TrainState:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return TrainState()
        with checkpoint.as_directory() as directory:
            return load_checkpoint(Path(directory), model, optimizer, scheduler)

    def report(self, record: dict, save) -> None:
        """Checkpoint through ray.train.report: a barrier every worker calls; rank 0 saves."""
        import ray.train

        # checkpoints without a fresh dev score score worst, so num_to_keep deletes them first
        metrics = {"dev_score": UNSCORED, **record}
        if self.rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            save(Path(directory))
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(directory),
                checkpoint_dir_name=f"checkpoint_{record['step']:08d}",
            )
