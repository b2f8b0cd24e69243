"""How much does the streaming student's decoder give, and what does it cost? A sweep.

    python benchmarks/ctc_beam_search.py --model runs/distill/streaming_long/model \
        --manifest data/synth_big/manifest.jsonl --split dev --limit 100
    # recordings without transcripts: agreement with the teacher's pseudo-labels
    python benchmarks/ctc_beam_search.py --model runs/distill/streaming_long/model \
        --manifest data/real/manifest.jsonl --split dev --labels runs/pl_real

Runs the exported student once over the split (320 ms chunks, its default), keeps the CTC
log-probabilities, then decodes them with several decoders: greedy, beam search without an
LM, and beam search with the export's character LM (lm.arpa) at several settings. Prints
WER, CER (normalized, as `audiodistill eval`) and the decoder's own real-time factor (decode
seconds per audio second, 1 thread; the encoder's cost is the same for all rows, so it is
left out). Tune on dev; score the chosen setting once on test with `audiodistill eval`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from audiodistill.data.audio import load_audio
from audiodistill.data.manifest import read_manifest
from audiodistill.decoding.ctc_decoder import (
    LM_FILE,
    BeamDecoder,
    DecodingOptions,
    GreedyDecoder,
    decode,
)
from audiodistill.decoding.ngram_lm import NgramLM
from audiodistill.evaluation.wer import cer, corpus_wer
from audiodistill.students.streaming import collate, frames_per_chunk, load_student
from audiodistill.students.tokenizer import BLANK

# (beam, prune_logprob, lm_weight, char_bonus) with the LM; the first is the default
LM_SETTINGS = [
    (16, -5.0, 1.0, 1.5),
    (16, -8.0, 1.0, 1.5),
    (16, -4.0, 1.0, 1.5),
    (8, -5.0, 1.0, 1.5),
    (32, -5.0, 1.0, 1.5),
    (16, -5.0, 0.8, 1.2),
    (16, -5.0, 1.2, 2.0),
    (16, -5.0, 1.0, 1.0),
]


def log_probs(model_dir: Path, audios: list[np.ndarray]) -> list[np.ndarray]:
    """CTC log-probabilities [T, V] of each clip, at the export's default chunk size."""
    student = load_student(model_dir)
    frames = frames_per_chunk(student.model.config)
    out = []
    with torch.inference_mode():
        for audio in audios:
            rows = [{"audio": audio, "text": ""}]
            batch = collate(rows, student.tokenizer, student.model.config.feature_pad_samples)
            logits, lengths, _ = student.model(batch["features"], batch["feature_lengths"], frames)
            out.append(logits[0, : lengths[0]].log_softmax(-1).numpy())
    return out


def decoders(model_dir: Path, symbols: tuple[str, ...]) -> dict[str, object]:
    """Named decoders to compare; the LM rows only when the export has an LM."""
    named: dict[str, object] = {
        "greedy": GreedyDecoder(symbols, BLANK),
        "beam 16, no LM": BeamDecoder(symbols, BLANK, DecodingOptions()),
    }
    if (model_dir / LM_FILE).exists():
        lm = NgramLM.load_arpa(model_dir / LM_FILE)
        for beam, prune, weight, bonus in LM_SETTINGS:
            options = DecodingOptions(
                beam=beam, prune_logprob=prune, lm_weight=weight, char_bonus=bonus
            )
            name = f"beam {beam}, LM x{weight}, bonus {bonus}, prune {prune:g}"
            named[name] = BeamDecoder(symbols, BLANK, options, lm)
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=100, help="first N utterances")
    parser.add_argument(
        "--labels", help="a pseudo-label run whose text is the reference (agreement WER)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    utterances = read_manifest(args.manifest, args.split)[: args.limit]
    audios = [load_audio(u.audio) for u in utterances]
    references = [u.text or "" for u in utterances]
    if args.labels:
        from audiodistill.data.label_store import read_labels

        teacher = read_labels(args.labels).set_index("id")["text"]
        references = [str(teacher[u.id]) for u in utterances]
    seconds = sum(len(a) for a in audios) / 16_000
    frames = log_probs(args.model, audios)
    symbols = tuple(load_student(args.model).tokenizer.symbols)
    print(f"{len(utterances)} utterances ({seconds / 60:.1f} min) of {args.manifest} {args.split}")
    scored = "agreement WER (vs the labels)" if args.labels else "WER"
    print(f"| decoder | {scored} | CER | decoder RTF (1 thread) |")
    print("| --- | ---: | ---: | ---: |")
    for name, decoder in decoders(args.model, symbols).items():
        start = time.perf_counter()
        texts = [decode(decoder, f) for f in frames]
        elapsed = time.perf_counter() - start
        wer = corpus_wer(references, texts).wer
        char = cer(" ".join(references), " ".join(texts))  # as `audiodistill eval` joins them
        print(f"| {name} | {wer:.1%} | {char:.1%} | {elapsed / seconds:.4f} |")


if __name__ == "__main__":
    main()
