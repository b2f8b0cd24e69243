"""Distillation at scale without a cluster (issue 20): the Ray Train job over synthetic
pseudo-label runs of 10k, 100k and 1M rows here, and over one size on a simulated cluster.

    python benchmarks/scale_distill.py                                 # about 6 minutes here
    python benchmarks/scale_distill.py --sizes 10000 100000 --cluster-size 10000   # a quick look

The labels are a pseudo-label run as the real job writes it (audiodistill/data/label_store.py
SCHEMA; shards of `--shard-rows` rows, one row group each, plus a dev shard of 64 rows), for
the fake student (audiodistill/students/fake_student.py): every training row points at one
of 64 tone clips of 3-10 digit words (0.6-1.8 s) and carries its text, token ids and top-5
ids and log-probs per token (random log-probs per row, so no two rows are alike). Each size
trains in a fresh process, since a peak RSS is a high-water mark, with a fresh Ray: local
(2 CPUs, 2 training workers), or `--nodes` worker nodes of 1 CPU each beside a head of 0
CPUs (`ray.cluster_utils.Cluster`), one training worker per node. Every run trains the
same: `--steps` steps of `--batch-size` clips per worker, rows streamed and shuffled in
windows of 4096 (train.shuffle_rows), a log line every step, dev WER once at the end.
Reported per run:

  driver peak RSS     ru_maxrss of the process that runs the job (the driver, which reads
                      the light columns of every row: ids, paths, durations, texts, scores)
  prepare s           from `run` to the end of the driver's label check (config.yaml written)
  first step s        from `run` to the first training step's record in metrics.jsonl
                      (Ray Train's worker group start and the first window of rows included)
  steps/s, samples/s  steps 2 to the last (samples over all workers, from the step records)
  job s               the whole `run` call (export included)
  rows trained        rows the workers trained on (all workers), against the corpus size
  object store peak   bytes held in the object stores of all nodes, sampled every 0.5 s
                      from the raylets (as benchmarks/scale.py)
  train worker peak RSS   the largest private RSS (RssAnon) of a single Ray Train worker
                      process (RayTrainWorker), sampled every 0.5 s from /proc
  other Ray peak RSS  (JSON only) the same for every other Ray worker process (the Train
                      controller...)

Target (issue 20): training worker RSS flat (within 1.5x) from the smallest to the largest
local size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scale import SAMPLE_SECONDS, _rss, ray_workers, start_ray

from audiodistill.data.audio import SAMPLE_RATE, save_wav
from audiodistill.data.label_store import SCHEMA, shard_path
from audiodistill.students.fake_student import tone_audio
from audiodistill.teachers.fake_teacher import DIGIT_WORDS
from audiodistill.training.distill_options import TrainOptions

CLIPS = 64  # distinct training clips the rows point at (16 overfit: dev WER stayed ~0.9)
DEV_CLIPS, DEV_ROWS = 8, 64
TOP_K = 5  # top-k ids and log-probs per token position
END = len(DIGIT_WORDS)  # the id after the last digit in top-k rows (the fake teacher's end)
METRICS_POLL_SECONDS = 0.05
TARGET_RATIO = 1.5


# ---------------------------------------------------------------- the synthetic labels


def write_clips(folder: Path, rng: np.random.Generator) -> dict[str, list]:
    """CLIPS training and DEV_CLIPS dev tone clips: their paths, digits and durations."""
    clips: dict[str, list] = {"train": [], "dev": []}
    for split, n in (("train", CLIPS), ("dev", DEV_CLIPS)):
        for i in range(n):
            digits = [int(d) for d in rng.integers(0, 10, size=3 + (i * 7) % 8)]  # 3..10
            audio = tone_audio(digits, rng)
            path = folder / "audio" / f"{split}-{i:02d}.wav"
            save_wav(path, audio)
            clips[split].append((str(path), digits, len(audio) / SAMPLE_RATE))
    return clips


def write_run(run_dir: Path, rows: int, shard_rows: int, clips: dict[str, list]) -> int:
    """A pseudo-label run of `rows` training rows (shards of `shard_rows`) and a dev shard;
    returns the number of shard files. Vectorized, one shard in memory at a time."""
    rng = np.random.default_rng(rows)
    shards = -(-rows // shard_rows)
    for k in range(shards):
        first, last = k * shard_rows, min(rows, (k + 1) * shard_rows)
        table = label_table(np.arange(first, last), "train", clips["train"], rng)
        pq.write_table(table, _fresh(shard_path(run_dir, k)))
    dev = label_table(np.arange(DEV_ROWS), "dev", clips["dev"], rng)
    pq.write_table(dev, _fresh(shard_path(run_dir, shards)))
    return shards + 1


def _fresh(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def label_table(index: np.ndarray, split: str, clips: list, rng) -> pa.Table:
    """Rows `index` of a split in SCHEMA: row i is clip i % len(clips), labelled exactly."""
    clip = index % len(clips)
    paths = np.array([c[0] for c in clips])[clip]
    texts = np.array([" ".join(DIGIT_WORDS[d] for d in c[1]) for c in clips])[clip]
    durations = np.array([c[2] for c in clips])[clip]
    tokens = [np.array(c[1], dtype=np.int32) for c in clips]
    counts = np.array([len(t) for t in tokens])[clip]
    token_ids = pa.ListArray.from_arrays(
        _offsets(counts), np.concatenate([tokens[c] for c in clip])
    )
    # top-k rows: [tokens + 1, k], the label's token first (then the end), 4 others after it
    best = np.concatenate([np.append(tokens[c], END) for c in clip]).astype(np.int32)
    positions = len(best)
    others = (best[:, None] + np.arange(1, TOP_K) + rng.integers(0, 7, (positions, 1))) % (END + 1)
    topk_ids = np.concatenate([best[:, None], others], axis=1).astype(np.int32)
    top = -rng.exponential(0.05, (positions, 1))
    rest = top - np.cumsum(rng.exponential(2.0, (positions, TOP_K - 1)), axis=1)
    topk_logprobs = np.concatenate([top, rest], axis=1).astype(np.float32)
    n = len(index)
    columns = {
        "id": pa.array([f"{split}-{i:08d}" for i in index]),
        "audio": pa.array(paths),
        "duration": pa.array(durations),
        "split": pa.array([split] * n),
        "speaker": pa.array(np.char.add("spk", (clip % 4).astype(str))),
        "reference": pa.array(texts),
        "text": pa.array(texts),
        "token_ids": token_ids,
        "topk_ids": _nested(counts + 1, topk_ids),
        "topk_logprobs": _nested(counts + 1, topk_logprobs),
        "avg_logprob": pa.array(np.full(n, -0.05)),
        "no_speech_prob": pa.array(np.zeros(n)),
        "compression_ratio": pa.array(np.ones(n)),
        "wer": pa.array(np.zeros(n)),
        "teacher": pa.array(["tone-oracle"] * n),
        "teacher_revision": pa.array(["0"] * n),
        "error": pa.nulls(n, pa.string()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def _offsets(counts: np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))


def _nested(positions_per_row: np.ndarray, values: np.ndarray) -> pa.Array:
    """[rows][positions][k] list arrays from a [positions, k] matrix."""
    k = values.shape[1]
    inner = pa.ListArray.from_arrays(
        pa.array(np.arange(0, values.size + 1, k, dtype=np.int32)), values.reshape(-1)
    )
    return pa.ListArray.from_arrays(_offsets(positions_per_row), inner)


# ---------------------------------------------------------------- one run, in a fresh process


def measure(spec: dict) -> dict:
    """One run in this (fresh) process: start Ray, train, read the gauges."""
    import ray

    from audiodistill.training.distill_options import DataOptions, DistillOptions
    from pipelines.distill import run

    cluster = start_ray(spec["nodes"], num_cpus=2)  # the 2 training workers of a local run
    out = Path(spec["out"])
    sampler = _Sampler(ray.get_runtime_context().gcs_address, out / "metrics.jsonl")
    workers = spec["workers"]
    options = DistillOptions(
        student="fake",
        out=str(out),
        data=DataOptions(labels=spec["labels"]),
        train=TrainOptions(
            workers=workers,
            max_steps=spec["steps"],
            batch_size=spec["batch_size"],
            lr=0.01,  # the fake student's rate (as its tests)
            warmup_steps=10,
            eval_every=spec["steps"],  # dev WER once, at the end: the run learnt
            checkpoint_every=spec["steps"],
            log_every=1,  # a record per step: the first step's time, steady throughput
            dev_limit=DEV_ROWS,
        ),
    )
    load = os.getloadavg()[0]
    driver_before = _own_rss("VmRSS")
    sampler.start()
    start = time.time()
    summary = run(options)
    job_seconds = time.time() - start
    sampler.stop()
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    steps = [r for r in sampler.records if "elapsed_s" in r]
    first, last = steps[0], steps[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    samples = _samples(steps, spec["steps"])
    return {
        "label_rows": spec["rows"],
        "train_utterances": summary["train_utterances"],
        "shards": spec["shards"],
        "nodes": spec["nodes"] or 1,
        "workers": workers,
        "steps": summary["steps"],
        "load_before": load,
        "driver_rss_before_mb": driver_before / 2**20,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prepare_seconds": (out / "config.yaml").stat().st_mtime - start,
        "workers_up_seconds": sampler.seen["start"] - start,
        "first_step_seconds": sampler.seen["step"] - start,
        "steps_per_second": (len(steps) - 1) / seconds,
        "samples_per_second": (sum(samples[1:])) / seconds,
        "rows_trained": round(sum(samples)),
        "job_seconds": job_seconds,
        "dev_wer": summary["best_dev_wer"],
        "object_store_peak_mb": sampler.store_peak / 2**20,
        "train_worker_peak_rss_mb": sampler.train_peak / 2**20,
        "other_ray_peak_rss_mb": sampler.other_peak / 2**20,
        "train_worker_processes": len(sampler.train_pids),
    }


def _own_rss(field: str) -> int:
    """Bytes of a /proc/self/status field (VmRSS: this process's resident set now)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith(field))) * 1024


def _samples(steps: list[dict], max_steps: int) -> list[float]:
    """Samples (all workers) of each step, from its record: samples/s times the step's
    seconds, which is what eta_s was computed from (steps left / steps per second); the
    last step has no eta left, so its seconds are the rise of elapsed_s (a little more)."""
    out, previous = [], 0.0
    for record in steps:
        left = max_steps - record["step"]
        seconds = record["eta_s"] / left if left else record["elapsed_s"] - previous
        out.append(record["samples_per_s"] * seconds)
        previous = record["elapsed_s"]
    return out


class _Sampler(threading.Thread):
    """Polls metrics.jsonl (when the first records appear), and every SAMPLE_SECONDS the
    object stores' bytes in use and the private RSS of the Ray worker processes under this
    one, keeping the peaks of the training workers and of the others apart."""

    def __init__(self, gcs_address: str, metrics: Path):
        super().__init__(daemon=True)
        from ray._private.internal_api import get_state_from_address

        self.state = get_state_from_address(gcs_address)
        self.metrics, self.offset, self.records, self.seen = metrics, 0, [], {}
        self.store_peak = self.train_peak = self.other_peak = 0
        self.train_pids: set[int] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        from ray._private.internal_api import get_memory_info_reply

        next_sample = 0.0
        while not self.stopped.wait(METRICS_POLL_SECONDS):
            self._read_metrics()
            if time.monotonic() < next_sample:
                continue
            next_sample = time.monotonic() + SAMPLE_SECONDS
            used = get_memory_info_reply(self.state).store_stats.object_store_bytes_used
            self.store_peak = max(self.store_peak, used)
            for pid, name in ray_workers():
                if name.startswith(b"ray::RayTrainWorker"):
                    self.train_pids.add(pid)
                    self.train_peak = max(self.train_peak, _rss(pid))
                else:
                    self.other_peak = max(self.other_peak, _rss(pid))

    def _read_metrics(self) -> None:
        """New whole lines of metrics.jsonl, with the time the start and step 1 appeared."""
        try:
            with self.metrics.open() as f:
                f.seek(self.offset)
                text = f.read()
        except OSError:
            return
        lines = text.split("\n")[:-1]  # a line is whole once its newline is written
        self.offset += sum(len(line) + 1 for line in lines)
        now = time.time()
        for line in lines:
            record = json.loads(line)
            self.records.append(record)
            if record.get("event") == "start":
                self.seen.setdefault("start", now)
            elif record.get("step", 0) > 0:
                self.seen.setdefault("step", now)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self._read_metrics()


def run_in_fresh_process(spec: dict, log: Path) -> dict:
    result = Path(spec["out"] + ".result.json")
    command = [sys.executable, __file__, "--one", json.dumps(spec), "--result", str(result)]
    with log.open("a") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1]
        )
    if done.returncode:
        raise RuntimeError(f"{spec}: failed\n{log.read_text()[-4000:]}")
    return json.loads(result.read_text())


# ---------------------------------------------------------------- the report


HEADER = (
    "| label rows | nodes | workers | driver RSS MB before / peak | prepare s | first step s "
    "| steps/s | samples/s | job s | rows trained | object store peak MB "
    "| train worker peak RSS MB |"
)


def table(rows: list[dict]) -> str:
    lines = [HEADER, "|" + " ---: |" * HEADER.count("|", 1)]
    for r in rows:
        lines.append(
            f"| {r['label_rows']:,} | {r['nodes']} | {r['workers']} "
            f"| {r['driver_rss_before_mb']:.0f} / {r['driver_peak_rss_mb']:.0f} "
            f"| {r['prepare_seconds']:.1f} | {r['first_step_seconds']:.1f} "
            f"| {r['steps_per_second']:.2f} | {r['samples_per_second']:.0f} "
            f"| {r['job_seconds']:.0f} | {r['rows_trained']:,} "
            f"| {r['object_store_peak_mb']:.1f} | {r['train_worker_peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> dict:
    """Largest over smallest local size; the issue asks for flat training worker RSS."""
    local = sorted((r for r in rows if r["nodes"] == 1), key=lambda r: r["label_rows"])
    small, large = local[0], local[-1]
    ratio = large["train_worker_peak_rss_mb"] / small["train_worker_peak_rss_mb"]
    return {
        "from_rows": small["label_rows"],
        "to_rows": large["label_rows"],
        "train_worker_peak_rss_ratio": ratio,
        "train_worker_rss_target_met": ratio <= TARGET_RATIO,
        "driver_peak_rss_ratio": large["driver_peak_rss_mb"] / small["driver_peak_rss_mb"],
        "first_step_ratio": large["first_step_seconds"] / small["first_step_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cluster-size", type=int, default=100_000, help="0: no cluster run")
    parser.add_argument("--nodes", type=int, default=4, help="worker nodes of the cluster run")
    parser.add_argument("--workers", type=int, default=2, help="training workers of a local run")
    parser.add_argument("--shard-rows", type=int, default=10_000, help="rows per label shard")
    parser.add_argument("--steps", type=int, default=200, help="train.max_steps")
    parser.add_argument("--batch-size", type=int, default=128, help="clips per worker per step")
    parser.add_argument("--out", default="benchmarks/results/distill_scale.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, as JSON
    parser.add_argument("--result", help=argparse.SUPPRESS)  # internal: where it writes
    args = parser.parse_args()
    if args.one:
        Path(args.result).write_text(json.dumps(measure(json.loads(args.one))))
        return
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        clips = write_clips(Path(work), np.random.default_rng(0))
        sizes = sorted(set(args.sizes) | ({args.cluster_size} - {0}))
        shards, write_seconds = {}, {}
        for n in sizes:
            t = time.perf_counter()
            shards[n] = write_run(Path(work, f"labels_{n}"), n, args.shard_rows, clips)
            write_seconds[n] = time.perf_counter() - t
            print(f"wrote {n:,} label rows ({shards[n]} shards) in {write_seconds[n]:.1f} s")
        runs = [(n, 0, args.workers) for n in args.sizes]
        runs += [(args.cluster_size, args.nodes, args.nodes)] if args.cluster_size else []
        print(HEADER, flush=True)
        for n, nodes, workers in runs:
            spec = {
                "labels": f"{work}/labels_{n}",
                "out": f"{work}/distill_{n}_{nodes}",
                "rows": n,
                "shards": shards[n],
                "nodes": nodes,
                "workers": workers,
                "steps": args.steps,
                "batch_size": args.batch_size,
            }
            rows.append(run_in_fresh_process(spec, Path(work, "runs.log")))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    import ray

    result = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}, "
        f"Python {platform.python_version()}, Ray {ray.__version__}",
        "student": "fake",
        "shard_rows": args.shard_rows,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "shuffle_rows": TrainOptions().shuffle_rows,
        "clips": CLIPS,
        "top_k": TOP_K,
        "wall_seconds": time.time() - started,
        "write_seconds": write_seconds,
        "runs": rows,
        "targets": targets(rows),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
    main()
