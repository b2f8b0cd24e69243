"""Options of the `distill` command: data, training schedule and workers, and each student's.

One frozen dataclass per concern, loaded from YAML with dotted overrides (audiodistill.config);
a run saves the resolved options beside its outputs as config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

from audiodistill.data.label_filters import FilterOptions
from audiodistill.students.registry import STUDENT_KINDS


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
    # label rows a worker buckets by duration and shuffles together as it reads its share of
    # the runs (a stream; whole epochs when they are smaller): bounds worker memory
    shuffle_rows: int = 4096
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
class _RunOptions:
    # which student: a kind in students/registry.py ("streaming", "whisper-distil", "codec",
    # or "fake" for tests); its options are the section of the same name (dashes as _)
    student: str = "streaming"
    # run directory: ray/ (checkpoints), model/ (export), config.yaml, metrics.jsonl
    out: str = "runs/distill/streaming"
    # where the pseudo-labels come from and which are used
    data: DataOptions = field(default_factory=DataOptions)
    # workers, optimizer, schedule, evaluation, checkpoints
    train: TrainOptions = field(default_factory=TrainOptions)


# The run's options plus one section per registered student, each the options dataclass
# that student declares (students/registry.py): adding a student touches only the registry.
DistillOptions = make_dataclass(
    "DistillOptions",
    [
        (kind.section, kind.options, field(default_factory=kind.options))
        for kind in STUDENT_KINDS.values()
    ],
    bases=(_RunOptions,),
    frozen=True,
)
DistillOptions.__module__ = __name__  # pickled by name to Ray workers
DistillOptions.__doc__ = "Options of `audiodistill distill`: the run, and each student's section."
