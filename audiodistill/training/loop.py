"""The one training loop: every student and the codec teacher train through `fit`.

`fit` runs in one process or on each DDP worker; what differs is a `TrainContext`: which
worker this is, how the model is placed, where checkpoints go and how a run resumes.
`LocalContext` (training/local_run.py) is one process with checkpoints in a directory;
pipelines/distill.py gives Ray Train's. A student plugs in as a `StudentTask` (build,
collate, loss, transcribe, save). A student that does not transcribe (a codec) provides
`evaluate` and `dev_metric` instead: its own dev metrics, one of them the dev score (lower is
better) that picks the best checkpoint; for ASR students the dev score is the dev WER.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from audiodistill.errors import DataError
from audiodistill.evaluation.wer import corpus_wer
from audiodistill.training.distill_options import TrainOptions
from audiodistill.training.label_rows import with_audio

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "state.pt"  # one file per checkpoint: model, optimizer, schedule, progress



class StudentTask(Protocol):
    """Everything the training loop knows about one kind of student."""

    kind: str  # the "student" key of an exported config.json; load_model dispatches on it

    def build(self) -> nn.Module:
        """A freshly initialised student (weights copied from a teacher where it is built so)."""
        ...

    def check(self, labels: pd.DataFrame) -> None:
        """Raise ValueError, saying why, when these labels cannot train this student."""
        ...

    def collate(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Rows (id, audio as 16 kHz float32, duration, text, token_ids, topk_*) -> tensors."""
        ...

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and its named parts (for logs); `model` may be DDP-wrapped."""
        ...

    def transcribe(self, model: nn.Module, audios: Sequence[np.ndarray]) -> list[str]:
        """Greedy transcripts, one per input."""
        ...

    def save(self, model: nn.Module, out_dir: Path) -> None:
        """Export: safetensors weights, config.json with a "student" key, tokenizer."""
        ...

    def finish_export(self, out_dir: Path, train: pd.DataFrame) -> None:
        """Add to a saved export what comes from the training rows rather than the weights
        (the streaming student's LM); runs once, on the driver."""
        ...


def bucket_batches(
    rows: Sequence[dict],
    batch_seconds: float,
    rng: np.random.Generator,
    batch_size: int | None = None,
) -> list[list[dict]]:
    """One epoch of batches of similar duration, in random order.

    Rows are sorted by duration (jittered by +-10% so buckets differ between epochs) and cut
    where the padded batch (clips x longest clip) would pass batch_seconds, or at batch_size
    clips when given. A clip longer than batch_seconds gets a batch of its own.
    """
    durations = np.array([r["duration"] for r in rows], dtype=float)
    order = np.argsort(durations * rng.uniform(0.9, 1.1, len(rows)), kind="stable")
    batches, current, longest = [], [], 0.0
    for i in order:
        if batch_size is not None:
            full = len(current) >= batch_size
        else:
            full = (len(current) + 1) * max(longest, durations[i]) > batch_seconds
        if current and full:
            batches.append(current)
            current, longest = [], 0.0
        current.append(rows[i])
        longest = max(longest, durations[i])
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


def batch_stream(
    epoch: Callable[[], Iterable[dict]],
    batch_seconds: float,
    rng: np.random.Generator,
    batch_size: int | None = None,
    window: int = 4096,
) -> Iterator[list[dict]]:
    """Batches with audio loaded, epoch after epoch, without end.

    `epoch()` gives one pass over this worker's rows: a list, or a stream read as it goes.
    Rows are bucketed by duration and shuffled `window` rows at a time, so a worker holds at
    most a window of label rows whatever the corpus size. Endless so that every DDP worker
    takes exactly as many steps as the others, whatever its shard's size: the loop stops on
    max_steps, never at the end of an epoch.
    """
    while True:
        seen = 0
        rows = iter(epoch())
        while part := list(itertools.islice(rows, window)):
            seen += len(part)
            for batch in bucket_batches(part, batch_seconds, rng, batch_size):
                yield with_audio(batch)
        if not seen:
            raise DataError("no training rows on this worker")


def lr_factor(step: int, warmup_steps: int, max_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1 at max_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    model: nn.Module, options: TrainOptions, lr_scale: Callable[[str], float] | None = None
):
    """AdamW over the trainable parameters, with the warm-up + cosine schedule.

    `lr_scale(name)` (a task's, optional) gives a parameter's learning rate as a fraction of
    options.lr: a student's weights copied from the teacher learn slower than its new head.
    """
    groups: dict[float, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            scale = 1.0 if lr_scale is None else lr_scale(name.removeprefix("module."))
            groups.setdefault(scale, []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": params, "lr": options.lr * scale} for scale, params in groups.items()],
        lr=options.lr,
        weight_decay=options.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, options.warmup_steps, options.max_steps)
    )
    return optimizer, scheduler


def train_step(
    model: nn.Module, task: StudentTask, batch: dict, optimizer, scheduler, grad_clip: float
) -> dict[str, float]:
    """One optimizer step; returns loss, its parts, gradient norm, learning rate, skipped.

    A non-finite gradient norm skips the update rather than poisoning the weights. Under DDP
    the norm is taken after the all-reduce, so every worker skips the same steps.
    """
    model.train()
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    loss, parts = task.loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf)
    finite = bool(torch.isfinite(norm))
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return {
        "loss": float(loss.detach()),
        **parts,
        "grad_norm": float(norm),
        "lr": float(max(scheduler.get_last_lr())),  # the full rate; some groups run scaled
        "skipped": float(not finite),
    }


def evaluate(
    model: nn.Module, task: StudentTask, dev_rows: Sequence[dict], batch_size: int = 16
) -> dict[str, float]:
    """Dev metrics of the student on rows with audio loaded, and `dev_score` among them: the
    task's own (`task.evaluate`, scored by `task.dev_metric`) where it has them, else corpus
    WER (the project's one normalization) of its transcripts.

    Runs the unwrapped module: a DDP forward on one worker alone would wait for the others.
    """
    module = getattr(model, "module", model)
    if hasattr(task, "evaluate"):
        was_training = module.training
        with torch.no_grad():
            metrics = task.evaluate(module, dev_rows)
        module.train(was_training)
        return metrics | {"dev_score": metrics[task.dev_metric]}
    was_training = module.training
    module.eval()
    start = time.perf_counter()
    hypotheses = []
    with torch.no_grad():
        for i in range(0, len(dev_rows), batch_size):
            chunk = dev_rows[i : i + batch_size]
            hypotheses += task.transcribe(module, [r["audio"] for r in chunk])
    module.train(was_training)
    counts = corpus_wer([r["reference"] for r in dev_rows], hypotheses)
    return {
        "dev_wer": counts.wer,
        "dev_score": counts.wer,
        "dev_utterances": float(len(dev_rows)),
        "dev_seconds": time.perf_counter() - start,
    }


@dataclass
class TrainState:
    """Progress that a checkpoint carries besides weights, optimizer and schedule."""

    step: int = 0  # optimizer steps done
    best_wer: float = math.inf  # best dev score so far (dev WER for ASR students)
    best_step: int = 0  # the step it was reached at
    bad_evals: int = 0  # evaluations in a row without a new best
    stopped: bool = False  # early-stopped: reruns of this run do not train further

    def record_eval(self, dev_score: float, patience: int) -> None:
        """Update the best, and stop after `patience` evaluations without one (0: never)."""
        if dev_score < self.best_wer:
            self.best_wer, self.best_step, self.bad_evals = dev_score, self.step, 0
        else:
            self.bad_evals += 1
        self.stopped = patience > 0 and self.bad_evals >= patience


def seed_everything(seed: int, rank: int, step: int) -> np.random.Generator:
    """Seed torch for this worker and return its data RNG, both drawn from (seed, rank, step).

    Deriving the streams instead of storing them lets any number of workers resume from a
    checkpoint written by one: each gets its own fresh, reproducible stream.
    """
    torch.manual_seed(hash((seed, rank, step)) % 2**63)
    return np.random.default_rng([seed, rank, step])


def save_checkpoint(directory: Path, model: nn.Module, optimizer, scheduler, state: TrainState):
    """Everything needed to continue training, as one file in `directory`."""
    module = getattr(model, "module", model)
    payload = {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "train_state": asdict(state),
    }
    torch.save(payload, Path(directory) / CHECKPOINT_FILE)


def load_checkpoint(directory: Path, model: nn.Module, optimizer, scheduler) -> TrainState:
    """Restore a checkpoint into a model (placed on its device already) and its optimizer."""
    payload = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    getattr(model, "module", model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    return TrainState(**payload["train_state"])


def export_checkpoint(task: StudentTask, directory: Path, out_dir: Path) -> None:
    """Write a checkpoint's weights as the student's export directory."""
    payload = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    model = task.build()
    model.load_state_dict(payload["model"])
    task.save(model.eval(), Path(out_dir))


class TrainContext(Protocol):
    """What `fit` needs from where it runs: one process, or one worker of a Ray Train group."""

    rank: int  # this worker's place in the group (0 evaluates, logs and saves)
    world_size: int  # workers in the group

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model placed on this worker's device (DDP-wrapped in a group)."""
        ...

    def restore(self, model: nn.Module, optimizer, scheduler) -> TrainState:
        """Load the latest checkpoint into model and optimizer; a fresh state if none."""
        ...

    def report(self, record: dict[str, Any], save: Callable[[Path], None]) -> None:
        """Keep a checkpoint: `save(directory)` writes it (worker 0 calls it); every worker
        calls report at the same step (a barrier in a group)."""
        ...


def fit(
    task: StudentTask,
    options: TrainOptions,
    epoch: Callable[[], Iterable[dict]],
    dev_rows: Sequence[dict],
    context: TrainContext,
    metrics_path: Path | None = None,
) -> TrainState:
    """Train `task`'s student from where `context` restores it up to options.max_steps:
    evaluate on `dev_rows` (audio paths, loaded on worker 0) and checkpoint on the way."""
    torch.set_num_threads(options.cpus_per_worker)
    torch.manual_seed(options.seed)
    model = context.prepare(task.build())
    optimizer, scheduler = make_optimizer(model, options, getattr(task, "lr_scale", None))
    state = context.restore(model, optimizer, scheduler)
    metrics = MetricsLog(metrics_path, context.rank == 0)
    metrics.start(state.step, context.world_size)
    if state.step >= options.max_steps or state.stopped:
        return state
    rng = seed_everything(options.seed, context.rank, state.step)
    evaluating = options.eval_every > 0
    dev = with_audio(dev_rows) if context.rank == 0 and evaluating else []
    meter = Meter()
    batches = batch_stream(
        epoch, options.batch_seconds, rng, options.batch_size, options.shuffle_rows
    )
    for batch in batches:
        batch_tensors = task.collate(batch)
        parts = train_step(model, task, batch_tensors, optimizer, scheduler, options.grad_clip)
        state.step += 1
        meter.add(batch, parts)
        last = state.step >= options.max_steps
        record: dict[str, Any] = {"step": state.step}
        if state.step % options.log_every == 0 or last:
            record |= meter.flush(state.step, options.max_steps, _device(model))
        if evaluating and (state.step % options.eval_every == 0 or last):
            record |= broadcast(evaluate(model, task, dev) if context.rank == 0 else None)
            state.record_eval(record["dev_score"], options.early_stop_patience)
            record |= {"best_dev_score": state.best_wer, "best_step": state.best_step}
        if len(record) > 1:
            metrics.write(record)
        if "dev_score" in record or state.step % options.checkpoint_every == 0 or last:
            record |= {"stopped": state.stopped}
            save = lambda d: save_checkpoint(d, model, optimizer, scheduler, state)  # noqa: E731
            context.report(record, save)
            meter.restart()  # evaluation and checkpoint time is not training throughput
        if last or state.stopped:
            break
    return state


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast(value: Any) -> Any:
    """Worker 0's value on every worker, so all take the same early-stop and checkpoint path."""
    if _world() > 1:
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        value = box[0]
    return value


def global_sum(values: list[float], device: torch.device) -> list[float]:
    """`values` summed over the workers of a group (as they are in one process)."""
    if _world() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
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

    def flush(self, step: int, max_steps: int, device: torch.device) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.since, 1e-9)
        samples, audio = global_sum([float(self.samples), self.audio], device)
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
    """`metrics.jsonl` and progress lines, written by worker 0 only (`path` None: lines only).

    After a restore, lines past the restored step are dropped: those steps are trained
    again and would otherwise appear twice.
    """

    def __init__(self, path: Path | None, active: bool):
        self.path, self.active = path, active

    def start(self, step: int, workers: int) -> None:
        if not self.active:
            return
        if self.path is not None and self.path.exists():
            lines = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
            kept = [x for x in lines if x.get("step", 0) <= step]
            self.path.write_text("".join(json.dumps(x) + "\n" for x in kept))
        log.info("training from step %d on %d worker(s)", step, workers)
        self.write({"event": "start", "step": step, "workers": workers})

    def write(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        if self.path is not None:
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
