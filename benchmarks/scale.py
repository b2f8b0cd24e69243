"""Pseudo-labelling at scale without a cluster (issue 20): the Ray job over synthetic
manifests of 10k, 100k and 1M utterances here, and over one size on a simulated cluster.

    python benchmarks/scale.py                                    # about 15 minutes here
    python benchmarks/scale.py --sizes 10000 100000 --cluster-size 10000   # a quick look

Every manifest row points at one of 16 tiny clips (0.1-0.25 s of noise, half of them at
44.1 kHz so that decoding resamples); the teacher is the fake one with a fixed cost per
utterance (`--seconds-per-item`). Each size runs in a fresh process, since a peak RSS is a
high-water mark, with a fresh Ray: local (this machine's CPUs), or `--nodes` worker nodes of
1 CPU each beside a head of 0 CPUs (`ray.cluster_utils.Cluster`), one actor per node.
Reported per run:

  driver peak RSS     ru_maxrss of the process that runs the job (the driver)
  first shard s       from the job's start to its first labelled shard (its summary)
  utt/s               utterances per second of the job's stream (the summary's wall time)
  job s               the whole `run` call, the end summary included
  object store peak   bytes held in the object stores of all nodes, sampled every 0.5 s
                      from the raylets (ray._private.internal_api.get_memory_info_reply)
  worker peak RSS     the largest private RSS (RssAnon: without the object store's shared
                      pages) of a single Ray worker process (reader, decoder or actor),
                      sampled every 0.5 s from /proc
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from audiodistill.data.audio import save_wav
from audiodistill.teachers import TeacherOptions
from audiodistill.teachers.shard_labelling import PseudoLabelOptions

CLIPS = 16  # distinct audio files the manifest rows point at
OBJECT_STORE_BYTES = 1 << 30  # per node, so a local run and a cluster node hold the same
SAMPLE_SECONDS = 0.5


def write_corpus(folder: Path, sizes: list[int]) -> dict[int, Path]:
    """The clips, and one JSONL manifest per size (written row by row, never held)."""
    rng = np.random.default_rng(0)
    for i in range(CLIPS):
        rate = 44_100 if i % 2 else 16_000
        seconds = 0.1 + 0.01 * i
        audio = 0.1 * rng.standard_normal(int(rate * seconds)).astype(np.float32)
        save_wav(folder / f"clip{i:02d}.wav", audio, rate)
    manifests = {}
    for n in sizes:
        manifests[n] = folder / f"manifest_{n}.jsonl"
        with manifests[n].open("w") as out:
            for i in range(n):
                row = {"id": f"utt{i:08d}", "audio": f"clip{i % CLIPS:02d}.wav"}
                out.write(json.dumps(row) + "\n")
    return manifests


def measure(spec: dict) -> dict:
    """One run, in this (fresh) process: start Ray, label the manifest, read the gauges."""
    import ray

    from pipelines.pseudo_label import run

    cluster = start_ray(spec["nodes"])
    sampler = _Sampler(ray.get_runtime_context().gcs_address)
    sampler.start()
    teacher = TeacherOptions(
        backend="fake", threads=1, fake_seconds_per_item=spec["seconds_per_item"]
    )
    options = PseudoLabelOptions(
        manifest=spec["manifest"],
        out=spec["out"],
        shard_size=spec["shard_size"],
        workers=spec["workers"],
        teacher=teacher,
    )
    start = time.perf_counter()
    summary = run(options, progress=False)
    job_seconds = time.perf_counter() - start
    sampler.stop()
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    return {
        "utterances": summary["items"],
        "nodes": spec["nodes"] or 1,
        "workers": spec["workers"],
        "shards": -(-summary["items"] // spec["shard_size"]),
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_shard_seconds": summary["first_shard_seconds"],
        "utterances_per_second": summary["labelled_this_run"] / summary["wall_seconds"],
        "stream_seconds": summary["wall_seconds"],
        "job_seconds": job_seconds,
        "object_store_peak_mb": sampler.store_peak / 2**20,
        "worker_peak_rss_mb": sampler.worker_peak / 2**20,
    }


def start_ray(nodes: int, num_cpus: int | None = None):
    """A local Ray of `num_cpus` CPUs (None: this machine's) when nodes=0, or a simulated
    cluster of `nodes` worker nodes with 1 CPU each and a head of 0 CPUs that runs only the
    driver (and a Train controller, which needs none)."""
    import ray
    from ray.cluster_utils import Cluster

    if not nodes:
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=OBJECT_STORE_BYTES,
            logging_level=logging.WARNING,
        )
        return None
    head = {"num_cpus": 0, "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(nodes):
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    return cluster


class _Sampler(threading.Thread):
    """Polls the object stores' bytes in use (all nodes) and the RSS of every Ray worker
    process under this one, keeping the peaks."""

    def __init__(self, gcs_address: str):
        super().__init__(daemon=True)
        from ray._private.internal_api import get_state_from_address

        self.state = get_state_from_address(gcs_address)
        self.store_peak = 0
        self.worker_peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        from ray._private.internal_api import get_memory_info_reply

        while not self.stopped.wait(SAMPLE_SECONDS):
            used = get_memory_info_reply(self.state).store_stats.object_store_bytes_used
            self.store_peak = max(self.store_peak, used)
            self.worker_peak = max([self.worker_peak, *_ray_worker_rss()])

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def _ray_worker_rss() -> list[int]:
    """Private RSS bytes of each Ray worker process descending from this one (Linux)."""
    return [_rss(pid) for pid, _ in ray_workers()]


def ray_workers() -> list[tuple[int, bytes]]:
    """(pid, command line) of each Ray worker process descending from this one (Linux)."""
    parents, names = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            names[int(entry.name)] = Path(entry.path, "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    ours = {os.getpid()}
    for pid in parents:
        _add_descendants(pid, parents, ours)
    return [(pid, names[pid]) for pid in ours if names.get(pid, b"").startswith(b"ray::")]


def _add_descendants(pid: int, parents: dict[int, int], ours: set[int]) -> None:
    """Add `pid` and its ancestors up to one in `ours` to `ours`, if it descends from one."""
    chain = []
    while pid in parents and pid not in ours:
        chain.append(pid)
        pid = parents[pid]
    if pid in ours:
        ours.update(chain)


def _rss(pid: int) -> int:
    """Private resident bytes (RssAnon): a worker's RSS also counts the object store's
    shared pages it has touched, up to the store's size, which is not its own memory."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("RssAnon")), 0)
    return int(kib) * 1024


def run_in_fresh_process(spec: dict) -> dict:
    command = [sys.executable, __file__, "--one", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if done.returncode:
        raise RuntimeError(f"{spec}: failed\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| utterances | nodes | shards | driver peak RSS MB | first shard s | utt/s | job s "
        "| object store peak MB | worker peak RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['utterances']:,} | {r['nodes']} | {r['shards']:,} "
            f"| {r['driver_peak_rss_mb']:.0f} | {r['first_shard_seconds']:.1f} "
            f"| {r['utterances_per_second']:.0f} | {r['job_seconds']:.0f} "
            f"| {r['object_store_peak_mb']:.0f} | {r['worker_peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> dict[str, float]:
    """Largest over smallest local size: the issue asks for both within 1.5x."""
    local = sorted((r for r in rows if r["nodes"] == 1), key=lambda r: r["utterances"])
    small, large = local[0], local[-1]
    return {
        "driver_peak_rss_ratio": large["driver_peak_rss_mb"] / small["driver_peak_rss_mb"],
        "first_shard_ratio": large["first_shard_seconds"] / small["first_shard_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cluster-size", type=int, default=100_000, help="0: no cluster run")
    parser.add_argument("--nodes", type=int, default=4, help="worker nodes of the cluster run")
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="actors of a local run")
    parser.add_argument("--seconds-per-item", type=float, default=0.001)
    parser.add_argument("--out", default="benchmarks/results/pseudo_label_scale.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as work:
        sizes = sorted(set(args.sizes) | ({args.cluster_size} - {0}))
        manifests = write_corpus(Path(work), sizes)
        runs = [(n, 0, args.workers) for n in args.sizes]
        runs += [(args.cluster_size, args.nodes, args.nodes)] if args.cluster_size else []
        for n, nodes, workers in runs:
            spec = {
                "manifest": str(manifests[n]),
                "out": f"{work}/run_{n}_{nodes}",
                "nodes": nodes,
                "workers": workers,
                "shard_size": args.shard_size,
                "seconds_per_item": args.seconds_per_item,
            }
            rows.append(run_in_fresh_process(spec))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    import ray

    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Ray {ray.__version__}",
        "shard_size": args.shard_size,
        "seconds_per_item": args.seconds_per_item,
        "runs": rows,
        "targets": targets(rows),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(rows))
    print(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
    main()
