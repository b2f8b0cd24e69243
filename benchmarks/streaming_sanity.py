"""Does the streaming student learn, and how fast does it run? A quick standalone check.

    python benchmarks/streaming_sanity.py --manifest data/synth/manifest.jsonl --steps 1500

1. Trains the product's streaming student (StreamingTask with a Conformer xs encoder) with
   CTC on the manifest's train split (targets: the reference text in spoken form) through
   the product's training loop (`training.loop.fit` in this process, checkpoints under
   `--out`/checkpoints): its AdamW with warm-up and cosine decay, batches of `--batch-size`
   clips bucketed by duration, audio read and featurized per batch, random chunk sizes.
   `--steps` steps on `--threads` threads; dev WER every `--eval-every` steps. Then the best
   checkpoint by dev WER is exported as `distill` exports it (`--out`/student) and the
   table gives its greedy dev WER/CER (normalized) at 160/320/640 ms chunks, and train
   WER/CER to show how much of the gap is overfitting to a small corpus.
2. On 1 thread, measures the real-time factor of streaming_xs and streaming_s (whole
   utterance and chunk by chunk through StreamingRecognizer), the latency of one 320 ms chunk
   step, and the RTF of Whisper tiny.en (CTranslate2 int8, the bundled teacher) on the same
   test utterances. Speed does not depend on the weights, so streaming_s runs untrained.

A synthetic corpus stands in for real speech: its WER says "it learns", nothing more.
Each run starts afresh: it clears `--out`/checkpoints and `--out`/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiodistill.data.audio import SAMPLE_RATE, load_audio
from audiodistill.data.manifest import read_manifest
from audiodistill.evaluation.wer import cer, corpus_wer
from audiodistill.students.registry import build_task
from audiodistill.students.streaming import (
    StreamingEncoder,
    StreamingRecognizer,
    count_parameters,
    frames_per_chunk,
    load_student,
    streaming_s,
    transcribe,
)
from audiodistill.students.streaming_task import StreamingOptions
from audiodistill.training.distill_options import DistillOptions, TrainOptions
from audiodistill.training.label_rows import with_audio
from audiodistill.training.local_run import LocalContext
from audiodistill.training.loop import export_checkpoint, fit


def load_split(manifest: str, split: str) -> list[dict]:
    """Training-loop rows of a split: id, audio path, duration, and the reference transcript
    as `text` (the CTC target, where distillation has the pseudo-label) and as `reference`
    (what dev WER is scored against)."""
    rows = []
    for u in read_manifest(manifest, split):
        duration = u.duration
        if duration is None:  # the loop buckets batches by duration
            duration = len(load_audio(u.source)) / SAMPLE_RATE
        text = u.text or ""
        rows.append(
            {"id": u.id, "audio": u.source, "duration": duration, "text": text, "reference": text}
        )
    return rows


def error_rates(model, tok, rows, chunk_ms: int) -> tuple[float, float]:
    """Corpus WER and mean per-utterance CER of greedy transcripts, on normalized text."""
    hyps = transcribe(model, tok, [r["audio"] for r in rows], chunk_ms=chunk_ms)
    refs = [r["reference"] for r in rows]
    cers = [cer(r, h) for r, h in zip(refs, hyps, strict=True)]
    return corpus_wer(refs, hyps).wer, statistics.mean(cers)


def train(args, train_rows: list[dict], dev_rows: list[dict]):
    """Train through the product's loop; (the exported student, the loop's metrics records)."""
    options = DistillOptions(
        student="streaming",
        out=args.out,
        streaming=StreamingOptions(encoder="conformer", size="xs"),
        train=TrainOptions(
            cpus_per_worker=args.threads,
            max_steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup,
            log_every=args.log_every,
            eval_every=args.eval_every,
            checkpoint_every=args.eval_every,
        ),
    )
    out = Path(args.out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # figures of this run, not a resumed one
    (out / "metrics.jsonl").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    task = build_task(options)
    context = LocalContext(out, options.train.keep_checkpoints)
    start = time.perf_counter()
    state = fit(task, options.train, lambda: train_rows, dev_rows, context, out / "metrics.jsonl")
    print(f"trained {state.step} steps in {time.perf_counter() - start:.0f} s", flush=True)
    best = context.best()
    export_checkpoint(task, best, out / "student")
    task.finish_export(out / "student", pd.DataFrame(train_rows))
    print(f"exported {best.name} (best dev WER) to {out / 'student'}", flush=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [r for r in records if "event" not in r]
    return load_student(out / "student"), curve


def whole_rtf(model, tok, audios) -> float:
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    start = time.perf_counter()
    for audio in audios:
        transcribe(model, tok, [audio])
    return (time.perf_counter() - start) / seconds


def streaming_numbers(model, tok, audios, chunk_ms: int = 320) -> dict[str, float]:
    """RTF of feeding each utterance in chunk-sized pieces, and per-chunk step latency."""
    recognizer = StreamingRecognizer(model, tok, chunk_ms)
    piece = chunk_ms * SAMPLE_RATE // 1000
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    latencies, finals = [], []
    start = time.perf_counter()
    for audio in audios:
        for i in range(0, len(audio), piece):
            t0 = time.perf_counter()
            recognizer.accept(audio[i : i + piece])
            latencies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        recognizer.finalize()
        finals.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    frames = frames_per_chunk(model.config, chunk_ms)
    features = torch.randn(1, frames, model.config.n_mels)
    state, steps = model.init_state(1, frames), []
    with torch.inference_mode():
        for _ in range(200):
            t0 = time.perf_counter()
            _, state = model.step(features, state)
            steps.append(time.perf_counter() - t0)
    return {
        "stream_rtf": total / seconds,
        "accept_p50_ms": _ms(latencies, 50),
        "accept_p95_ms": _ms(latencies, 95),
        "finalize_p50_ms": _ms(finals, 50),
        "step_p50_ms": _ms(steps, 50),
        "step_p95_ms": _ms(steps, 95),
    }


def _ms(seconds: list[float], percentile: float) -> float:
    return 1000 * float(np.percentile(seconds, percentile))


def whisper_rtf(audios) -> float:
    from audiodistill.teachers import TeacherOptions, build_teacher

    teacher = build_teacher(TeacherOptions(backend="ct2", threads=1, compute_type="int8"))
    teacher.transcribe([audios[0]])  # warm-up
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    start = time.perf_counter()
    for audio in audios:
        teacher.transcribe([audio])
    return (time.perf_counter() - start) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="data/synth/manifest.jsonl")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=300, help="steps")
    parser.add_argument("--speed-utterances", type=int, default=10)
    parser.add_argument("--out", default="runs/streaming_sanity")
    args = parser.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("audiodistill.training.loop").setLevel(logging.INFO)  # progress lines

    train_rows, dev = load_split(args.manifest, "train"), load_split(args.manifest, "dev")
    test = load_split(args.manifest, "test")[: args.speed_utterances]
    print(f"train {len(train_rows)} utterances, dev {len(dev)}, speed on {len(test)}")
    student, curve = train(args, train_rows, dev)
    model, tok = student.model, student.tokenizer
    dev, train_sample = with_audio(dev), with_audio(train_rows[: len(dev)])
    final = {}
    for ms in (160, 320, 640):
        final[f"dev_wer_{ms}ms"], final[f"dev_cer_{ms}ms"] = error_rates(model, tok, dev, ms)
    final["train_wer_320ms"], final["train_cer_320ms"] = error_rates(model, tok, train_sample, 320)
    print(json.dumps(final))

    torch.set_num_threads(1)
    test_audio = [r["audio"] for r in with_audio(test)]
    speed = {"test_seconds": sum(len(a) for a in test_audio) / SAMPLE_RATE}
    for name, m in (("xs", model), ("s", StreamingEncoder(streaming_s()).eval())):
        speed[f"{name}_params"] = count_parameters(m)
        speed[f"{name}_whole_rtf"] = whole_rtf(m, tok, test_audio)
        for key, value in streaming_numbers(m, tok, test_audio).items():
            speed[f"{name}_{key}"] = value
    speed["whisper_tiny_en_ct2_int8_rtf"] = whisper_rtf(test_audio)
    print(json.dumps(speed, indent=1))
    report = {"curve": curve, "final": final, "speed": speed}
    (Path(args.out) / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
