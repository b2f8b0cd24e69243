"""Does the streaming student learn, and how fast does it run? A quick standalone check.

    python benchmarks/streaming_sanity.py --manifest data/synth/manifest.jsonl --minutes 5

1. Trains streaming_xs with CTC on the manifest's train split (targets: the reference text in
   spoken form) for `--steps` steps on `--threads` threads (1500 steps of 8 clips: about 5
   minutes on an idle 2-core machine), random chunk sizes, and prints the loss curve and
   dev WER/CER (normalized) at 160/320/640 ms chunks, and train WER/CER to show how much of
   the gap is overfitting to a small corpus.
2. On 1 thread, measures the real-time factor of streaming_xs and streaming_s (whole
   utterance and chunk by chunk through StreamingRecognizer), the latency of one 320 ms chunk
   step, and the RTF of Whisper tiny.en (CTranslate2 int8, the bundled teacher) on the same
   test utterances. Speed does not depend on the weights, so streaming_s runs untrained.

A synthetic corpus stands in for real speech: its WER says "it learns", nothing more.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiodistill.audio import SAMPLE_RATE, load_audio
from audiodistill.manifest import read_manifest
from audiodistill.metrics import cer, corpus_wer
from audiodistill.students.features import log_mel
from audiodistill.students.streaming import (
    StreamingEncoder,
    StreamingRecognizer,
    count_parameters,
    ctc_loss,
    frames_per_chunk,
    sample_chunk_frames,
    save_student,
    streaming_s,
    streaming_xs,
    transcribe,
)
from audiodistill.students.tokenizer import CharTokenizer


def load_split(manifest: str, split: str) -> list[tuple[np.ndarray, str]]:
    return [(load_audio(u.audio), u.text or "") for u in read_manifest(manifest, split)]


def make_batches(items, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (sorted within pools of 4 batches)."""
    order = list(range(len(items)))
    rng.shuffle(order)
    pool = 4 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        ids = sorted(order[start : start + pool], key=lambda i: items[i][0].shape[0])
        batches += [ids[j : j + batch_size] for j in range(0, len(ids), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(items, ids) -> dict[str, torch.Tensor]:
    """Like streaming.collate, from features and targets computed once up front."""
    feats = [items[i][0] for i in ids]
    targets = [items[i][1] for i in ids]
    return {
        "features": nn.utils.rnn.pad_sequence(feats, batch_first=True),
        "feature_lengths": torch.tensor([len(f) for f in feats]),
        "targets": nn.utils.rnn.pad_sequence(targets, batch_first=True),
        "target_lengths": torch.tensor([len(t) for t in targets]),
    }


def error_rates(model, tok, items, chunk_ms: int) -> tuple[float, float]:
    """Corpus WER and mean per-utterance CER, both on normalized text."""
    hyps = transcribe(model, tok, [a for a, _ in items], chunk_ms=chunk_ms)
    refs = [t for _, t in items]
    cers = [cer(r, h) for r, h in zip(refs, hyps, strict=True)]
    return corpus_wer(refs, hyps).wer, statistics.mean(cers)


def train(args, tok, train_set, dev) -> tuple[StreamingEncoder, list[dict]]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    model = StreamingEncoder(streaming_xs())
    items = [
        (log_mel(torch.from_numpy(a)), torch.tensor(tok.encode(t), dtype=torch.long))
        for a, t in train_set
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    start, step, curve, window = time.perf_counter(), 0, [], []
    while step < args.steps:
        for ids in make_batches(items, args.batch_size, rng)[: args.steps - step]:
            # linear warm-up, then cosine decay to 0 at the last step
            warm = min(1.0, (step + 1) / args.warmup)
            scale = warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
            for group in optimizer.param_groups:
                group["lr"] = args.lr * scale
            batch = pad_batch(items, ids)
            model.train()
            chunk = sample_chunk_frames(model.config, rng)
            logits, out_lengths, _ = model(batch["features"], batch["feature_lengths"], chunk)
            loss = ctc_loss(logits, out_lengths, batch["targets"], batch["target_lengths"])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            window.append(loss.item())
            if step % args.log_every == 0 or step % args.eval_every == 0:
                seconds = round(time.perf_counter() - start)
                point = {"step": step, "seconds": seconds, "loss": statistics.mean(window)}
                window = []
                if step % args.eval_every == 0:
                    wer, char_er = error_rates(model, tok, dev, 320)
                    point.update(dev_wer_320ms=wer, dev_cer_320ms=char_er)
                curve.append(point)
                print(json.dumps(point), flush=True)
    print(f"trained {step} steps in {time.perf_counter() - start:.0f} s", flush=True)
    return model.eval(), curve


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

    tok = CharTokenizer()
    train_set, dev = load_split(args.manifest, "train"), load_split(args.manifest, "dev")
    test = load_split(args.manifest, "test")[: args.speed_utterances]
    print(f"train {len(train_set)} utterances, dev {len(dev)}, speed on {len(test)}")
    model, curve = train(args, tok, train_set, dev)
    final = {}
    for ms in (160, 320, 640):
        final[f"dev_wer_{ms}ms"], final[f"dev_cer_{ms}ms"] = error_rates(model, tok, dev, ms)
    final["train_wer_320ms"], final["train_cer_320ms"] = error_rates(
        model, tok, train_set[: len(dev)], 320
    )
    print(json.dumps(final))
    save_student(model, tok, Path(args.out) / "student")

    torch.set_num_threads(1)
    test_audio = [a for a, _ in test]
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
