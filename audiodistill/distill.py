"""Distillation training without Ray: options, data prep, batching, one step, dev WER, state.

Student-agnostic: a student plugs in as a `StudentTask` (build, collate, loss, transcribe,
save, check). A student that does not transcribe (the codec student) provides `evaluate` and
`dev_metric` instead: its own dev metrics, one of them the dev score (lower is better) that
picks the best checkpoint; for ASR students the dev score is the dev WER.
`pipelines/distill.py` runs this loop on Ray Train workers; everything a worker does per
step lives here so it runs and is tested in one process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from audiodistill.audio import load_audio
from audiodistill.errors import DataError
from audiodistill.filters import FilterOptions, apply_filters
from audiodistill.labels import is_codec_run, read_labels
from audiodistill.manifest import ManifestError, read_manifest
from audiodistill.metrics import corpus_wer, normalize_text
from audiodistill.students.codec import CodecOptions
from audiodistill.students.fake import FakeStudentOptions
from audiodistill.students.streaming_task import StreamingOptions
from audiodistill.students.whisper_distil import WhisperDistilOptions

CHECKPOINT_FILE = "state.pt"  # one file per checkpoint: model, optimizer, schedule, progress
HELD_OUT_SPLITS = ("dev", "test")  # splits of extra label runs never trained on


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


@dataclass(frozen=True)
class TrainOptions:
    # Ray Train workers (DDP processes): one per GPU, or CPU workers of cpus_per_worker each
    workers: int = 1
    # one GPU per worker
    use_gpu: bool = False
    # CPUs reserved per worker; also its torch threads
    cpus_per_worker: int = 1
    # optimizer steps in all; a resumed run continues up to this
    max_steps: int = 2000
    # padded audio per batch per worker (longest clip x clips, seconds): bounds memory
    batch_seconds: float = 120.0
    # fixed clips per batch instead of batch_seconds (None: batch_seconds decides)
    batch_size: int | None = None
    # peak learning rate (AdamW)
    lr: float = 1e-3
    # steps of linear warm-up from 0 to lr; a cosine decay to lr / 10 at max_steps follows
    warmup_steps: int = 100
    # AdamW decoupled weight decay
    weight_decay: float = 0.01
    # clip the global gradient norm to this (0: no clipping)
    grad_clip: float = 1.0
    # steps between dev WER evaluations, on worker 0 (0: never; then no best-model choice)
    eval_every: int = 200
    # stop after this many evaluations in a row without a new best dev WER (0: never)
    early_stop_patience: int = 0
    # steps between checkpoints (every evaluation checkpoints too, and so does the end)
    checkpoint_every: int = 200
    # checkpoints kept: the best by dev WER, and always the latest
    keep_checkpoints: int = 2
    # steps between progress lines (loss, samples/s, ETA)
    log_every: int = 20
    # seeds weights, data order and dropout; each worker draws from (seed, rank, step)
    seed: int = 0
    # worker-group restarts from the latest checkpoint after a worker or node dies
    max_failures: int = 3
    # dev utterances used for WER (the first N by id)
    dev_limit: int = 200


@dataclass(frozen=True)
class DataOptions:
    # pseudo-label run directory (holds shards/)
    labels: str = "runs/pseudo_labels/tiny_en"
    # more pseudo-label runs trained on beside `labels` (e.g. recordings of your own beside a
    # synthetic corpus): every row except those of their dev and test splits, which stay
    # held out; the same filters apply, dev rows come from `labels`
    extra_labels: tuple[str, ...] = ()
    # times each run's training rows appear per epoch: `labels` first, then each of
    # extra_labels (missing: 1); weighs a small set of real recordings up beside hours of
    # synthetic speech
    repeat: tuple[int, ...] = ()
    # corpus manifests whose dev and test sentences are never trained on: training rows whose
    # reference reads the same (normalized) are dropped, so a bigger corpus made with another
    # seed cannot leak an evaluation sentence into training
    holdout: tuple[str, ...] = ()
    # which pseudo-labels are good enough to train on
    filters: FilterOptions = field(default_factory=FilterOptions)
    # split trained on (None: every row not in dev_split)
    train_split: str | None = "train"
    # split for dev WER (None: no dev evaluation)
    dev_split: str | None = "dev"
    # training clips longer than this (seconds) are dropped: they would blow batch memory
    max_duration: float = 30.0


@dataclass(frozen=True)
class DistillOptions:
    # which student: "whisper-distil", "streaming", "codec", or "fake" (tests)
    student: str = "streaming"
    # run directory: ray/ (checkpoints), model/ (export), config.yaml, metrics.jsonl
    out: str = "runs/distill/streaming"
    # where the pseudo-labels come from and which are used
    data: DataOptions = field(default_factory=DataOptions)
    # workers, optimizer, schedule, evaluation, checkpoints
    train: TrainOptions = field(default_factory=TrainOptions)
    # options of the "streaming" student (chunked Conformer, character CTC)
    streaming: StreamingOptions = field(default_factory=StreamingOptions)
    # options of the "whisper-distil" student (teacher encoder + K teacher decoder layers)
    whisper_distil: WhisperDistilOptions = field(default_factory=WhisperDistilOptions)
    # options of the "fake" student (tests and dry runs)
    fake: FakeStudentOptions = field(default_factory=FakeStudentOptions)
    # options of the "codec" student (a smaller codec distilled from a codec teacher)
    codec: CodecOptions = field(default_factory=CodecOptions)


# what distillation reads from a pseudo-label run (see audiodistill/labels.py SCHEMA)
REQUIRED_COLUMNS = (
    "id", "audio", "duration", "split", "reference", "text", "token_ids", "topk_ids",
    "topk_logprobs", "avg_logprob", "no_speech_prob", "compression_ratio", "wer", "error",
)  # fmt: skip
# what codec distillation reads from a codec pseudo-label run (audiodistill/labels.py)
CODEC_REQUIRED_COLUMNS = ("id", "audio", "duration", "split", "codes", "latents", "error")


def load_training_rows(options: DataOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, dev) label rows, filtered; DataError naming the cause when nothing can train."""
    labels = _read_run(Path(options.labels))
    dev = _dev_rows(labels, options) if options.dev_split else labels.iloc[:0]
    in_train = (
        labels["split"] == options.train_split
        if options.train_split is not None
        else labels["split"] != options.dev_split
    )
    candidates = _with_extra_runs(labels[in_train], options.extra_labels, options.repeat)
    if candidates.empty:
        splits = sorted(labels["split"].dropna().unique())
        raise DataError(
            f"{options.labels}: no rows in split {options.train_split!r} (splits present: "
            f"{splits}); set data.train_split (null: every row not in data.dev_split)"
        )
    kept, dropped = _filter(candidates, options.filters)
    held_out = _held_out_texts(options.holdout)
    leaks = kept["reference"].fillna("").map(normalize_text).isin(held_out)
    dropped["held_out_sentence"] = int(leaks.sum())
    kept = kept[~leaks]
    dropped["no_audio_file"] = int((kept["audio"].fillna("") == "").sum())
    dropped["too_long"] = int((kept["duration"] > options.max_duration).sum())
    kept = kept[(kept["audio"].fillna("") != "") & (kept["duration"] <= options.max_duration)]
    if kept.empty:
        counts = ", ".join(f"{k} {v}" for k, v in dropped.items())
        raise DataError(
            f"{options.labels}: all {len(candidates)} rows of split {options.train_split!r} "
            f"were filtered out (dropped: {counts}); loosen data.filters or data.max_duration"
        )
    kept = kept.reset_index(drop=True)
    kept.attrs["dropped"] = dropped  # per-filter counts, for the run's summary
    return kept, dev


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


def _read_run(run_dir: Path) -> pd.DataFrame:
    if not run_dir.is_dir():
        raise DataError(f"data.labels: {run_dir} does not exist (run `audiodistill pseudo-label`)")
    try:
        labels = read_labels(run_dir)
    except FileNotFoundError as err:
        raise DataError(str(err)) from err
    required = CODEC_REQUIRED_COLUMNS if is_codec_run(labels) else REQUIRED_COLUMNS
    missing = [c for c in required if c not in labels.columns]
    if missing:
        raise DataError(
            f"{run_dir}: pseudo-label shards lack column(s) {', '.join(missing)}; "
            "they were written by another tool or version (relabel with `pseudo-label`)"
        )
    return labels


def _filter(rows: pd.DataFrame, options: FilterOptions) -> tuple[pd.DataFrame, dict]:
    """The ASR filters; codec labels have no transcript to judge, only failed rows drop."""
    if not is_codec_run(rows):
        return apply_filters(rows, options)
    failed = rows["error"].notna()
    return rows[~failed].reset_index(drop=True), {"failed": int(failed.sum())}


def _with_extra_runs(
    train: pd.DataFrame, runs: Sequence[str], repeat: Sequence[int] = ()
) -> pd.DataFrame:
    """Training rows plus the extra runs' rows outside their dev and test splits, the rows of
    run i (0: `train`'s own) repeated `repeat[i]` times; ids must be unique across runs."""
    if len(repeat) > len(runs) + 1 or any(r < 1 for r in repeat):
        raise DataError("data.repeat: one count >= 1 per run (labels, then extra_labels)")
    extra = [_read_run(Path(run)) for run in runs]
    parts = [train, *(rows[~rows["split"].isin(HELD_OUT_SPLITS)] for rows in extra)]
    rows = pd.concat(parts, ignore_index=True)
    duplicated = rows["id"][rows["id"].duplicated()]
    if not duplicated.empty:
        raise DataError(
            f"data.extra_labels: id {duplicated.iloc[0]!r} is in more than one pseudo-label run; "
            "ids must be unique across the runs trained on together"
        )
    counts = [*repeat, *[1] * (len(parts) - len(repeat))]
    if all(n == 1 for n in counts):
        return rows
    repeated = (part for part, n in zip(parts, counts, strict=True) for _ in range(n))
    return pd.concat(repeated, ignore_index=True)


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
    rows: Sequence[dict], batch_seconds: float, rng: np.random.Generator, batch_size: int | None
) -> Iterator[list[dict]]:
    """Batches with audio loaded, epoch after epoch, without end.

    Endless so that every DDP worker takes exactly as many steps as the others, whatever
    its shard's size: the loop stops on max_steps, never on the end of an epoch.
    """
    if not rows:
        raise ValueError("no training rows on this worker")
    while True:
        for batch in bucket_batches(rows, batch_seconds, rng, batch_size):
            yield with_audio(batch)


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
