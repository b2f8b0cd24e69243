"""GPU readiness in one table: the teacher and both ASR students' training on one device.

    bash benchmarks/gpu_check.sh          # one CUDA GPU, under 8 minutes (the GPU tests too)
    bash benchmarks/gpu_check.sh --cpu    # the same steps on CPU at tiny sizes

On the device it runs
  teacher  the transformers teacher (the bundled tiny.en; whisper-large-v3 only when already
           in the local Hugging Face cache, else a row says it was skipped) at each --batches
           size, fp16 on a GPU, through the Ray pseudo-label job (1 actor holding the device)
           and through a plain batched loop in this process, the same utterances per
           transcribe call as a job's shard (benchmarks/pseudo_label_throughput.py)
  train    Ray Train with use_gpu for both ASR students (configs/distill/whisper_distil.yaml
           and streaming.yaml, 1 worker, --steps steps) on labels the job makes first, with
           one dev evaluation at the end: the path that once fed a GPU model CPU features
           (benchmarks/train_throughput.py; the evaluation is not in the throughput)
and prints one table. Ray and this process's CUDA are started before any timing; each Ray
actor's own start (CUDA, model load) is inside its time, as it is in a real job. A stage
that would start after --budget-s is listed as skipped; a stage that fails is listed with
its error and the check exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pseudo_label_throughput import plain_loop, ray_job
from train_throughput import throughput

from audiodistill.config import load_config
from audiodistill.data.audio import SAMPLE_RATE, load_audio
from audiodistill.data.manifest import read_manifest, write_manifest
from audiodistill.teachers import TeacherOptions
from audiodistill.teachers.shard_labelling import PseudoLabelOptions
from audiodistill.training.distill_options import DistillOptions

LARGE = "openai/whisper-large-v3"
STUDENT_CONFIGS = ("configs/distill/whisper_distil.yaml", "configs/distill/streaming.yaml")
COLUMNS = ("check", "model", "setting", "plain audio-s/s", "Ray audio-s/s", "Ray/plain", "note")


@dataclasses.dataclass(frozen=True)
class Check:
    # "cuda" (fp16, one GPU per Ray actor and worker) or "cpu" (float32, the --cpu dry run)
    device: str
    # corpus manifest; the teacher takes its first `n` utterances
    manifest: str
    # utterances the teacher labels per batch size
    n: int
    # large-v3 is slow at batch 1: it labels this many instead
    large_n: int
    # teacher batch sizes; a job's shard (and the plain loop's call) holds the largest
    batches: tuple[int, ...]
    # utterances labelled to train the students on (None: the whole manifest)
    label_n: int | None
    # Ray Train steps per student
    steps: int
    # CPUs per Ray actor or Train worker (audio decoding, features)
    cpus: int
    # seconds after which no new stage starts
    budget_s: float

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    def teacher(self, model: str | None, batch_size: int) -> TeacherOptions:
        return TeacherOptions(
            backend="hf",
            model=model,
            device=self.device,
            dtype="float16" if self.gpu else "float32",
            batch_size=batch_size,
            threads=self.cpus,
        )


def cached_model(repo_id: str) -> str | None:
    """A hub model's local directory when its weights are already in the Hugging Face cache;
    None otherwise (nothing is downloaded)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    return str(path) if any(path.glob("*.safetensors")) else None


def teacher_rows(check: Check, name: str, model: str | None, n: int, tmp: Path) -> list[dict]:
    """Ray job vs plain loop at each batch size, on the first `n` utterances."""
    utterances = read_manifest(check.manifest)[:n]
    manifest = tmp / f"teacher-{n}.jsonl"
    write_manifest(utterances, manifest)
    audio_s = sum(len(load_audio(u.audio)) for u in utterances) / SAMPLE_RATE
    shard = max(check.batches)
    rows = []
    for batch in check.batches:
        options = check.teacher(model, batch)
        plain = audio_s / plain_loop(utterances, options, chunk=shard)
        ray = audio_s / ray_job(manifest, 1, options, shard, gpus_per_worker=float(check.gpu))
        setting = f"batch {batch} {options.dtype}, {n} utt"
        rows.append(_row("teacher", name, setting, plain, ray))
    return rows


def make_labels(check: Check, out: Path) -> list[dict]:
    """Pseudo-labels (tiny.en, batch 64, top-k) for the students, made by the Ray job."""
    from pipelines.pseudo_label import run

    options = PseudoLabelOptions(
        manifest=check.manifest,
        out=str(out),
        limit=check.label_n,
        shard_size=64,
        gpus_per_worker=float(check.gpu),
        teacher=check.teacher(None, 64),
    )
    summary = run(options, progress=False)
    setting = f"Ray job, batch 64, {summary['items']} utt"
    note = f"the students' labels ({summary['failed']} failed)"
    return [_row("labels", "tiny.en", setting, None, summary["audio_seconds_per_second"], note)]


def student_rows(check: Check, config: str, labels: Path) -> list[dict]:
    """`check.steps` Ray Train steps of one student on the device, one dev evaluation."""
    overrides = [
        f"data.labels={labels}",
        f"train.cpus_per_worker={check.cpus}",
        "train.dev_limit=16",
        "streaming.lm_order=0",  # the export's n-gram fit is CPU work, not what is checked
    ]
    options = load_config(DistillOptions, config, overrides)
    result = throughput(options, 1, check.steps, check.gpu, eval_every=check.steps)
    note = (
        f"{result['steps']} steps, {result['samples_per_s']:.1f} samples/s, "
        f"dev WER {result['dev_score']:.3f} ({options.train.dev_limit} utt max)"
    )
    setting = f"Ray Train, use_gpu={check.gpu}"
    return [_row("train", options.student, setting, None, result["audio_seconds_per_s"], note)]


def _row(
    stage: str, model: str, setting: str, plain: float | None, ray: float | None, note: str = ""
) -> dict:
    """One line of the table; audio seconds per second through the plain loop and Ray."""
    ratio = f"{ray / plain:.2f}x" if plain and ray else ""
    return dict(zip(COLUMNS, (stage, model, setting, plain, ray, ratio, note), strict=True))


Stage = tuple[str, str, Callable[[], list[dict]] | str]  # (check, model, work or why skipped)


def stages(check: Check, tmp: Path) -> list[Stage]:
    """In the order they run: tiny.en and the students first, large-v3 last, as it alone
    may not fit the budget."""
    labels = tmp / "labels"
    plan: list[Stage] = [
        ("teacher", "tiny.en", partial(teacher_rows, check, "tiny.en", None, check.n, tmp)),
        ("labels", "tiny.en", partial(make_labels, check, labels)),
    ]
    for config in STUDENT_CONFIGS:
        plan.append(("train", Path(config).stem, partial(student_rows, check, config, labels)))
    large = cached_model(LARGE)
    if not check.gpu:
        plan.append(("teacher", LARGE, "skipped: GPU only (far too slow on CPU)"))
    elif large is None:
        plan.append(("teacher", LARGE, "skipped: not in the local Hugging Face cache"))
    else:
        large_rows = partial(teacher_rows, check, LARGE, large, check.large_n, tmp)
        plan.append(("teacher", LARGE, large_rows))
    return plan


def run_check(check: Check) -> tuple[list[dict], bool]:
    """The table's rows and whether every stage that ran passed."""
    start, rows, ok = time.perf_counter(), [], True
    with tempfile.TemporaryDirectory() as tmp:
        for stage, model, work in stages(check, Path(tmp)):
            if isinstance(work, str):
                rows.append(_row(stage, model, "", None, None, work))
            elif time.perf_counter() - start > check.budget_s:
                rows.append(_row(stage, model, "", None, None, "skipped: over the time budget"))
            else:
                try:
                    rows += work()
                except Exception as err:  # one failing stage must not hide the others
                    traceback.print_exc()
                    rows.append(_row(stage, model, "", None, None, f"FAILED: {err!r}"[:160]))
                    ok = False
            print(f"[{time.perf_counter() - start:.0f} s] {stage} {model} done", flush=True)
    return rows, ok


def table(rows: list[dict]) -> str:
    cells = [[_cell(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--manifest", default="data/synth/manifest.jsonl")
    parser.add_argument("--n", type=int, default=192, help="utterances per teacher batch size")
    parser.add_argument("--large-n", type=int, default=32, help="the same for large-v3")
    parser.add_argument("--batches", default="1,16,64", help="teacher batch sizes")
    parser.add_argument("--label-n", type=int, default=None, help="utterances labelled")
    parser.add_argument("--steps", type=int, default=300, help="Ray Train steps per student")
    parser.add_argument("--cpus", type=int, default=4, help="CPUs per actor or worker")
    parser.add_argument("--budget-s", type=float, default=380.0)
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args()
    check = Check(
        device=args.device,
        manifest=args.manifest,
        n=args.n,
        large_n=args.large_n,
        batches=tuple(int(b) for b in args.batches.split(",")),
        label_n=args.label_n,
        steps=args.steps,
        cpus=args.cpus,
        budget_s=args.budget_s,
    )
    device = _start(check)
    rows, ok = run_check(check)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    print(f"\n{device}\n{table(rows)}")
    raise SystemExit(0 if ok else 1)


def _start(check: Check) -> str:
    """Start Ray and this process's CUDA before any timing; the device's name."""
    import torch

    from pipelines.pseudo_label import init_ray

    init_ray()
    if not check.gpu:
        return "cpu (no GPU used)"
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here (use --cpu for the dry run)")
    torch.zeros(1, device="cuda")
    return torch.cuda.get_device_name()


if __name__ == "__main__":
    main()
