"""Ray job: distill a student from pseudo-labels with Ray Train (TorchTrainer, DDP).

The driver checks the options and the labels (every "cannot train" error comes before any
worker starts), hands the filtered label rows to Ray Data and starts `workers` Ray Train
workers. Each worker reads its Ray Data shard once (ids, audio paths, labels: small), then
draws duration-bucketed batches from it for as many steps as the others, loading each
clip's audio itself. Audio is decoded in the workers rather than by a Ray Data map because
decoding a wav costs well under 1% of a step, and on CPU clusters a separate decoding stage
would compete with the training workers for the same cores (on a 2-core machine it would
wait for a CPU that the workers hold).

Checkpoints, restarts and resume are Ray Train's (Train V2, the default in Ray 2.60):
`RunConfig(name="train", storage_path=<out>/ray)` persists every reported checkpoint and a
snapshot of the checkpoint list. When a worker dies, the controller restarts the worker
group (FailureConfig.max_failures times) and `ray.train.get_checkpoint()` returns the latest
checkpoint. When the whole job is rerun with the same `out`, the new controller finds the
snapshot under the same name and storage path and restores it the same way, so the step
count continues. Keeping the best (by dev score: dev WER, or a non-ASR student's own dev
metric) and the latest checkpoint is CheckpointConfig's num_to_keep with dev_score as the
score: Ray never deletes the latest.

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

import torch
import yaml

from audiodistill.config import save_config, to_dict
from audiodistill.distill import (
    DataError,
    DistillOptions,
    StudentTask,
    TrainState,
    batch_stream,
    evaluate,
    export_checkpoint,
    load_checkpoint,
    load_training_rows,
    make_optimizer,
    save_checkpoint,
    seed_everything,
    train_step,
    training_row,
    with_audio,
)
from audiodistill.students.registry import build_task
from pipelines.pseudo_label import init_ray

log = logging.getLogger(__name__)

RUN_NAME = "train"  # Ray Train run name under <out>/ray; the same name is what resumes
# the dev score of a checkpoint from a step without evaluation: the largest finite float, not
# infinity, because Ray keeps the checkpoint list as JSON, which writes infinity as null, and
# a rerun that found a null there failed at its first checkpoint instead of resuming
UNSCORED = sys.float_info.max


def run(options: DistillOptions) -> dict[str, Any]:
    """Train (or resume) the student in `options.out`, export the best, return a summary."""
    options = with_absolute_teachers(options)
    task = build_task(options)
    train_rows, dev_rows = prepare(options, task)
    out = Path(options.out).resolve()
    _check_resumable(out, options)
    save_config(options, out / "config.yaml")
    start = time.perf_counter()
    result = _fit(options, out, train_rows, dev_rows)
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


def with_absolute_teachers(options: DistillOptions) -> DistillOptions:
    """Teacher directories given relative to where the job started, made absolute: Ray Train
    workers run in a directory of their own, where a relative path names nothing."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    return dataclasses.replace(
        options,
        codec=dataclasses.replace(options.codec, teacher=absolute(options.codec.teacher)),
        whisper_distil=dataclasses.replace(
            options.whisper_distil, teacher=absolute(options.whisper_distil.teacher)
        ),
        streaming=dataclasses.replace(
            options.streaming, teacher=absolute(options.streaming.teacher)
        ),
    )


def prepare(options: DistillOptions, task: StudentTask):
    """Filtered (train, dev) rows, or DataError saying why they cannot train this student."""
    train, dev = load_training_rows(options.data)
    try:
        task.check(train)
    except ValueError as err:
        raise DataError(f"{options.data.labels}: {err}") from err
    if options.train.eval_every > 0 and dev.empty:
        raise DataError(
            f"{options.data.labels}: no usable rows in dev split {options.data.dev_split!r} for "
            "dev WER; set data.dev_split to a split with rows, or train.eval_every=0"
        )
    if len(train) < options.train.workers:
        raise DataError(f"{len(train)} training rows cannot feed {options.train.workers} workers")
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


def _fit(options: DistillOptions, out: Path, train_rows, dev_rows):
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = [training_row(r) for r in train_rows.to_dict(orient="records")]
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
        datasets={"train": ray.data.from_items(rows)},
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
    """One DDP worker: restore, train to max_steps, evaluate and checkpoint on the way."""
    import ray.train
    import ray.train.torch

    options: DistillOptions = config["options"]
    train = options.train
    rank = ray.train.get_context().get_world_rank()
    _log_progress()
    torch.set_num_threads(train.cpus_per_worker)
    task = build_task(options)
    torch.manual_seed(train.seed)
    model = ray.train.torch.prepare_model(task.build())
    optimizer, scheduler = make_optimizer(model, train, getattr(task, "lr_scale", None))
    state = _restore(model, optimizer, scheduler)
    rng = seed_everything(train.seed, rank, state.step)
    rows = [training_row(r) for r in ray.train.get_dataset_shard("train").iter_rows()]
    dev = with_audio(config["dev_rows"]) if rank == 0 and train.eval_every > 0 else []
    metrics = MetricsLog(Path(config["metrics_path"]), rank == 0)
    metrics.start(state.step, ray.train.get_context().get_world_size(), len(rows))
    if state.step >= train.max_steps or state.stopped:
        return
    meter = Meter()
    for batch in batch_stream(rows, train.batch_seconds, rng, train.batch_size):
        parts = train_step(model, task, task.collate(batch), optimizer, scheduler, train.grad_clip)
        state.step += 1
        meter.add(batch, parts)
        last = state.step >= train.max_steps
        record = {"step": state.step}
        if state.step % train.log_every == 0 or last:
            record |= meter.flush(state.step, train.max_steps)
        if train.eval_every > 0 and (state.step % train.eval_every == 0 or last):
            record |= _broadcast(evaluate(model, task, dev) if rank == 0 else None)
            state.record_eval(record["dev_score"], train.early_stop_patience)
            record |= {"best_dev_score": state.best_wer, "best_step": state.best_step}
        if len(record) > 1:
            metrics.write(record)
        if "dev_score" in record or state.step % train.checkpoint_every == 0 or last:
            record |= {"stopped": state.stopped}
            _report(record, model, optimizer, scheduler, state, rank)
            meter.restart()  # evaluation and checkpoint time is not training throughput
        if last or state.stopped:
            break


def _log_progress() -> None:
    """Send this module's progress lines to the worker's stderr, which Ray shows the driver.

    A handler of its own: a Ray worker's root logger passes only warnings, and raising it
    would let every library in the worker log at INFO too.
    """
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _restore(model, optimizer, scheduler) -> TrainState:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return TrainState()
    with checkpoint.as_directory() as directory:
        return load_checkpoint(Path(directory), model, optimizer, scheduler)


def _report(record: dict, model, optimizer, scheduler, state: TrainState, rank: int) -> None:
    """Checkpoint through ray.train.report: a barrier every worker calls; rank 0 saves."""
    import ray.train

    # checkpoints without a fresh dev score score worst, so num_to_keep deletes them first
    metrics = {"dev_score": UNSCORED, **record}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        save_checkpoint(Path(directory), model, optimizer, scheduler, state)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(directory),
            checkpoint_dir_name=f"checkpoint_{state.step:08d}",
        )


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _broadcast(value: dict | None) -> dict:
    """Rank 0's value on every worker, so all take the same early-stop and checkpoint path."""
    if _world() > 1:
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        value = box[0]
    return value


def _global_sum(values: list[float]) -> list[float]:
    if _world() == 1:
        return values
    import ray.train.torch

    tensor = torch.tensor(values, dtype=torch.float64, device=ray.train.torch.get_device())
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


class Meter:
    """Throughput and mean loss since the last progress line, summed over all workers."""

    def __init__(self):
        self.restart()
        self.first = time.perf_counter()

    def restart(self) -> None:
        self.since, self.samples, self.audio, self.losses = time.perf_counter(), 0, 0.0, []

    def add(self, batch: list[dict], parts: dict[str, float]) -> None:
        self.samples += len(batch)
        self.audio += sum(r["duration"] for r in batch)
        self.losses.append(parts)

    def flush(self, step: int, max_steps: int) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.since, 1e-9)
        samples, audio = _global_sum([float(self.samples), self.audio])
        keys = self.losses[0].keys() if self.losses else ()
        out = {k: sum(p[k] for p in self.losses) / len(self.losses) for k in keys}
        steps_per_s = len(self.losses) / seconds
        out |= {
            "samples_per_s": samples / seconds,
            "audio_seconds_per_s": audio / seconds,
            "eta_s": (max_steps - step) / max(steps_per_s, 1e-9),
            "elapsed_s": time.perf_counter() - self.first,
        }
        self.restart()
        return out


class MetricsLog:
    """`<out>/metrics.jsonl` and progress lines, written by worker 0 only.

    After a restore, lines past the restored step are dropped: those steps are trained
    again and would otherwise appear twice.
    """

    def __init__(self, path: Path, active: bool):
        self.path, self.active = path, active

    def start(self, step: int, workers: int, rows: int) -> None:
        if not self.active:
            return
        if self.path.exists():
            lines = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
            kept = [x for x in lines if x.get("step", 0) <= step]
            self.path.write_text("".join(json.dumps(x) + "\n" for x in kept))
        log.info("training from step %d on %d workers (%d rows on worker 0)", step, workers, rows)
        self.write({"event": "start", "step": step, "workers": workers})

    def write(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        if "loss" in record:
            log.info(
                "step %d loss %.4f  %.1f samples/s  %.1f audio-s/s  ETA %.0f s",
                record["step"],
                record["loss"],
                record["samples_per_s"],
                record["audio_seconds_per_s"],
                record["eta_s"],
            )
        if "dev_score" in record:
            log.info(
                "step %d dev score %.4f (best %.4f at step %d)",
                record["step"],
                record["dev_score"],
                record["best_dev_score"],
                record["best_step"],
            )
