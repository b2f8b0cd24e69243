"""Checkpoints of the training loop, and one-process runs that keep them in a directory.

A checkpoint is one file (loop.CHECKPOINT_FILE: weights, optimizer, schedule and TrainState)
in a directory of its own. Ray Train keeps them for distributed runs (pipelines/distill.py);
`LocalContext` keeps them under `<out>/checkpoints/` for runs in one process (the codec
teacher, benchmarks, tests): the latest, and the best by dev score.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from audiodistill.training.loop import TrainState, load_checkpoint


class LocalContext:
    """`fit` in this process: no group, checkpoints under `<directory>/checkpoints/`.

    Each checkpoint directory holds state.pt and metrics.json (its report); after each
    report only the latest and the `keep - 1` best by dev score stay. A rerun with the same
    directory resumes from the latest.
    """

    rank, world_size = 0, 1

    def __init__(self, directory: str | Path, keep: int = 2):
        self.root = Path(directory) / "checkpoints"
        self.keep = max(keep, 1)

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def restore(self, model: nn.Module, optimizer, scheduler) -> TrainState:
        latest = self.latest()
        if latest is None:
            return TrainState()
        return load_checkpoint(latest, model, optimizer, scheduler)

    def report(self, record: dict[str, Any], save: Callable[[Path], None]) -> None:
        directory = self.root / f"checkpoint_{record['step']:08d}"
        staging = directory.with_name(directory.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save(staging)
        (staging / "metrics.json").write_text(json.dumps(record))
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)  # a checkpoint appears whole or not at all
        self._prune()

    def checkpoints(self) -> list[tuple[Path, dict]]:
        """(directory, its report) of every kept checkpoint, oldest first."""
        found = sorted(p for p in self.root.glob("checkpoint_*") if p.suffix != ".partial")
        return [(p, json.loads((p / "metrics.json").read_text())) for p in found]

    def latest(self) -> Path | None:
        kept = self.checkpoints()
        return kept[-1][0] if kept else None

    def best(self) -> Path | None:
        """The checkpoint with the lowest dev score (earliest on a tie), else the latest."""
        scored = [(m["dev_score"], m["step"], p) for p, m in self.checkpoints() if "dev_score" in m]
        return min(scored)[2] if scored else self.latest()

    def _prune(self) -> None:
        kept = self.checkpoints()
        scored = sorted((m["dev_score"], m["step"]) for _, m in kept if "dev_score" in m)
        best_steps = {step for _, step in scored[: self.keep - 1]}
        for path, metrics in kept[:-1]:
            if metrics["step"] not in best_steps:
                shutil.rmtree(path)
