"""Ray pseudo-label job vs a plain in-process loop over the same utterances, in one run.

    python benchmarks/pseudo_label_throughput.py --manifest data/synth/manifest.jsonl --n 96

Measures audio seconds per wall second for:
  plain    one CT2 teacher (1 thread) transcribing utterance by utterance in this process
  ray x1   the Ray job, 1 actor of 1 thread
  ray x2   the Ray job, 2 actors of 1 thread each
and prints the ratios the foundation issue sets targets for (ray x1 / plain >= 0.9,
ray x2 / ray x1 >= 1.7 on 2 cores). Ray is started before timing (a cluster is already up
in real use); model loading is inside the timed region for every variant. The machine is
shared and noisy: compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from audiodistill.data.audio import load_audio
from audiodistill.data.manifest import read_manifest, write_manifest
from audiodistill.teachers import TeacherOptions, build_teacher
from audiodistill.teachers.shard_labelling import PseudoLabelOptions


def plain_loop(utterances, teacher_options: TeacherOptions, chunk: int = 1) -> float:
    """Wall seconds for the same work without Ray: load model, decode, transcribe `chunk`
    utterances per call (the job hands its teacher a whole shard per call; a batching
    teacher needs the same here for a fair comparison)."""
    start = time.perf_counter()
    teacher = build_teacher(teacher_options)
    for i in range(0, len(utterances), chunk):
        teacher.transcribe([load_audio(u.audio) for u in utterances[i : i + chunk]])
    return time.perf_counter() - start


def ray_job(
    manifest: Path,
    workers: int,
    teacher_options: TeacherOptions,
    shard_size: int,
    gpus_per_worker: float = 0.0,
) -> float:
    from pipelines.pseudo_label import run

    with tempfile.TemporaryDirectory() as out:
        options = PseudoLabelOptions(
            manifest=str(manifest),
            out=out,
            workers=workers,
            shard_size=shard_size,
            gpus_per_worker=gpus_per_worker,
            teacher=teacher_options,
        )
        start = time.perf_counter()
        run(options, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="data/synth/manifest.jsonl")
    parser.add_argument("--n", type=int, default=96, help="utterances to label")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/pseudo_label_throughput.json")
    args = parser.parse_args()

    from pipelines.pseudo_label import init_ray

    utterances = read_manifest(args.manifest)[: args.n]
    audio_seconds = sum(len(load_audio(u.audio)) for u in utterances) / 16_000
    teacher = TeacherOptions(backend="ct2", threads=1, compute_type="int8")
    init_ray()
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "manifest.jsonl"
        write_manifest(utterances, subset)
        walls = {
            "plain": plain_loop(utterances, teacher),
            "ray_x1": ray_job(subset, 1, teacher, args.shard_size),
            "ray_x2": ray_job(subset, 2, teacher, args.shard_size),
        }
    result = {
        "utterances": len(utterances),
        "audio_seconds": audio_seconds,
        "teacher": dataclasses.asdict(teacher),
        "wall_seconds": walls,
        "audio_seconds_per_second": {k: audio_seconds / v for k, v in walls.items()},
        "ratio_ray_x1_vs_plain": walls["plain"] / walls["ray_x1"],
        "speedup_ray_x2_vs_x1": walls["ray_x1"] / walls["ray_x2"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
