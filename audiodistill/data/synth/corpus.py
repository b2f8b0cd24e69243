"""Build the embedded synthetic speech corpus: sentences, voices, augmentation, manifest.

    audiodistill synth --out data/synth --n 400 --seed 0

Everything random is drawn from the seed, and each utterance's audio depends only on its own
text, voice and index, so the corpus is byte-identical for a seed whatever `workers` is.
Splits are by sentence: every sentence is read once, so no text is in two splits.
"""

from __future__ import annotations

import logging
import random
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audiodistill.config import save_config
from audiodistill.data.audio import SAMPLE_RATE, save_wav
from audiodistill.data.manifest import Utterance, write_manifest
from audiodistill.data.synth.augment import AugmentOptions, augment
from audiodistill.data.synth.texts import SynthText, generate_texts
from audiodistill.data.synth.voices import EspeakVoice, Voice, available_voices

log = logging.getLogger(__name__)
SILENCE_DB = -45.0  # frames this far below the loudest frame count as leading/trailing silence


@dataclass(frozen=True)
class SynthOptions:
    # corpus folder: audio/<id>.wav, manifest.jsonl and synth_config.yaml go here
    out: str = "data/synth"
    # utterances to write; each is a distinct sentence, read once
    n: int = 400
    # fixes sentences, voices, augmentation and TTS noise: same seed, same bytes
    seed: int = 0
    # share of sentences held out for dev and for test (splits are by sentence)
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    # also read with espeak-ng voices when its binary is installed (more speakers)
    use_espeak: bool = True
    # share of utterances espeak-ng reads; it is robotic, so hibari reads most
    espeak_fraction: float = 0.3
    # share of utterances augmented (speed, noise, reverb, gain, telephone); the rest clean
    augment_probability: float = 0.5
    # which effects an augmented utterance may get, and how strong
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    # readings longer than this are dropped: a 30-word sentence takes about 12 s
    max_seconds: float = 20.0
    # silence at each end after trimming, so no word touches the edge of the file
    pad_seconds: float = 0.2
    # peak level of every clean reading, so voices start out equally loud
    peak_db: float = -3.0
    # synthesis processes; the corpus does not depend on it (1 runs in this process)
    workers: int = 2
    # utterance ids are <id_prefix>-<index>: corpora trained on together need distinct ones
    id_prefix: str = "synth"


@dataclass(frozen=True)
class SynthJob:
    index: int  # position in the corpus: names the file and seeds the augmentation
    text: SynthText
    voice: Voice
    split: str


def build_corpus(options: SynthOptions, progress: bool = True) -> list[Utterance]:
    """Synthesize the corpus into `options.out`; returns the utterances of its manifest."""
    _check(options)
    out = Path(options.out).resolve()
    (out / "audio").mkdir(parents=True, exist_ok=True)
    jobs = plan(options)
    results = tqdm(_run(jobs, options, out), total=len(jobs), desc="synth", disable=not progress)
    utterances = [u for u in results if u is not None]
    if len(utterances) < len(jobs):
        log.warning(
            "dropped %d readings over %s s", len(jobs) - len(utterances), options.max_seconds
        )
    write_manifest(utterances, out / "manifest.jsonl")
    # written last: a config beside a manifest means the corpus is complete (quickstart reuses it)
    save_config(options, out / "synth_config.yaml")
    minutes = sum(u.duration or 0.0 for u in utterances) / 60
    log.info("synth: %d utterances, %.1f min of audio in %s", len(utterances), minutes, out)
    return utterances


def _check(options: SynthOptions) -> None:
    if options.n < 1:
        raise ValueError(f"n must be >= 1, got {options.n}")
    if options.dev_fraction < 0 or options.test_fraction < 0:
        raise ValueError("dev_fraction and test_fraction must be >= 0")
    if options.dev_fraction + options.test_fraction >= 1:
        raise ValueError("dev_fraction + test_fraction must leave some sentences for train")
    if not re.fullmatch(r"[A-Za-z0-9_]+", options.id_prefix):
        raise ValueError(f"id_prefix must be letters, digits or _, got {options.id_prefix!r}")


def plan(options: SynthOptions) -> list[SynthJob]:
    """Sentences, their splits and their voices: cheap, and fixed by the seed."""
    texts = generate_texts(options.n, options.seed)
    rng = random.Random(f"plan-{options.seed}")
    splits = assign_splits(len(texts), options.dev_fraction, options.test_fraction, rng)
    voices = available_voices(options.seed, options.use_espeak)
    espeak = [v for v in voices if isinstance(v, EspeakVoice)]
    neural = [v for v in voices if not isinstance(v, EspeakVoice)] or espeak
    if not neural:
        raise RuntimeError("no voice available: hibari is not installed and espeak-ng is absent")
    jobs = []
    for index, (text, split) in enumerate(zip(texts, splits, strict=True)):
        family = espeak if espeak and rng.random() < options.espeak_fraction else neural
        jobs.append(SynthJob(index, text, rng.choice(family), split))
    return jobs


def assign_splits(n: int, dev: float, test: float, rng: random.Random) -> list[str]:
    """Exact split sizes over distinct sentences, in shuffled positions."""
    n_dev, n_test = round(n * dev), round(n * test)
    splits = ["test"] * n_test + ["dev"] * n_dev + ["train"] * (n - n_dev - n_test)
    rng.shuffle(splits)
    return splits


def _run(jobs: list[SynthJob], options: SynthOptions, out: Path):
    """Utterances in job order, from a process pool when `workers` > 1."""
    if options.workers <= 1:
        yield from (synthesize_one(job, options, out) for job in jobs)
        return
    # spawn, not fork: the caller may already run threads (Ray, onnxruntime, torch)
    context = get_context("spawn")
    with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        args = ([options] * len(jobs), [out] * len(jobs))
        yield from pool.map(synthesize_one, jobs, *args, chunksize=4)


def synthesize_one(job: SynthJob, options: SynthOptions, out: Path) -> Utterance | None:
    """Read, trim, augment and write one utterance; None when the reading is too long."""
    audio = job.voice.synthesize(job.text.spoken)
    audio = pad(trim_silence(audio), options.pad_seconds)
    audio *= 10 ** (options.peak_db / 20) / (np.abs(audio).max() + 1e-9)
    rng = np.random.default_rng([options.seed, job.index])
    description = "clean"
    if rng.random() < options.augment_probability:
        audio, description = augment(audio, rng, options.augment)
    # gain or noise may push peaks past full scale; scale down rather than clip
    audio /= max(1.0, float(np.abs(audio).max()) / 0.99)
    duration = audio.size / SAMPLE_RATE
    if duration > options.max_seconds:
        return None
    uid = f"{options.id_prefix}-{job.index:05d}"
    path = out / "audio" / f"{uid}.wav"
    save_wav(path, audio)
    return Utterance(
        id=uid,
        audio=str(path),
        duration=round(duration, 3),
        text=job.text.text,
        split=job.split,
        speaker=job.voice.name,
        meta={
            "voice": job.voice.name,
            "augmentation": description,
            "spoken": job.text.spoken,
            "kind": job.text.kind,
        },
    )


def trim_silence(audio: np.ndarray, frame: int = SAMPLE_RATE // 100) -> np.ndarray:
    """Cut leading and trailing 10 ms frames quieter than SILENCE_DB below the loudest."""
    frames = audio[: audio.size // frame * frame].reshape(-1, frame)
    if frames.size == 0:
        return audio
    level = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    active = np.flatnonzero(20 * np.log10(level / level.max()) > SILENCE_DB)
    return audio[active[0] * frame : (active[-1] + 1) * frame]


def pad(audio: np.ndarray, seconds: float) -> np.ndarray:
    silence = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([silence, audio.astype(np.float32), silence])
