"""`audiodistill transcribe --model DIR`: an exported student run in-process, no server.

Files, or raw PCM on stdin (`-`, so a microphone piped in is transcribed live), go through
the server's own `OnlineSession`: energy VAD cuts the audio into segments at pauses, and
silence never gives text. A streaming student steps as audio arrives, its partial text goes
to stderr and each segment's final text to stdout as soon as the segment closes, with the
segment's times. A whisper-distil student transcribes each closed segment whole (segments
stop at 25 s, inside its 30 s window). Only numpy, soundfile, soxr and onnxruntime are
needed: this runs on an `audiodistill[edge]` install.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import numpy as np

from audiodistill.data.audio import SAMPLE_RATE, AudioError, load_audio
from audiodistill.edge.causal import EXPORT_KIND as CAUSAL_KIND
from audiodistill.edge.causal import OnnxCausalWhisper
from audiodistill.edge.recognizer import (
    OnnxStreamingModel,
    load_onnx_model,
)
from audiodistill.edge.whisper import EXPORT_KIND as WHISPER_KIND
from audiodistill.edge.whisper import OnnxWhisper
from audiodistill.errors import ModelError
from audiodistill.online.streams import Engine, Event, OnlineSession, RecognizerEngine

if TYPE_CHECKING:
    from audiodistill.online.client import TranscribeOptions

PIECE_SECONDS = 0.5  # a file is fed in pieces this long (the session cuts them finer)
READ_SECONDS = 0.1  # stdin is read this much at a time at most, as soon as any arrives


def load_export(
    path: str | Path, int8: bool | None = None, threads: int = 1
) -> OnnxStreamingModel | OnnxWhisper | OnnxCausalWhisper:
    """Any kind of `audiodistill export` directory, by its config.json. int8 None runs
    the fp32 graphs where the export has them, else the int8 ones (a release ships int8 only)."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{path}: not an export directory (no config.json)")
    config = json.loads(config_path.read_text())
    if int8 is None:
        int8 = "fp32" not in config.get("models", {})
    if config.get("student") == WHISPER_KIND:
        return OnnxWhisper(path, int8, threads)
    if config.get("student") == CAUSAL_KIND:
        return OnnxCausalWhisper(path, int8, threads)
    return load_onnx_model(path, int8, threads)  # says what it wants of anything else


class WindowEngine:
    """A whole-clip transcriber as a session's engine: a segment's audio is kept and
    transcribed once, when the segment closes; nothing is shown before that."""

    def __init__(self, transcribe: Callable[[np.ndarray], str]):
        self._transcribe = transcribe
        self._pieces: list[np.ndarray] = []

    async def accept(self, pcm: np.ndarray, speech: bool) -> str:
        self._pieces.append(pcm)
        return ""

    async def end_segment(self, flush: bool) -> str:
        audio, self._pieces = np.concatenate([np.zeros(0, np.float32), *self._pieces]), []
        return self._transcribe(audio).strip() if len(audio) else ""

    async def drop_segment(self) -> None:
        self._pieces = []


def engine_for(model: OnnxStreamingModel | OnnxWhisper | OnnxCausalWhisper) -> Engine:
    """A fresh engine (one input's stream) on a loaded export."""
    if isinstance(model, OnnxWhisper):
        return WindowEngine(lambda audio: model.transcribe([audio])[0])
    return RecognizerEngine(model.recognizer())


def run_session(
    engine: Engine, pieces: Iterable[np.ndarray], on_event: Callable[[Event], None]
) -> float:
    """One input, 16 kHz pieces in order, through a VAD session around `engine`; each event
    goes to `on_event` as it happens. Returns the input's length in seconds."""

    async def feed() -> float:
        session = OnlineSession(engine)
        for pcm in pieces:
            for event in await session.accept(pcm):
                on_event(event)
        for event in await session.finish():
            on_event(event)
        return session.samples / SAMPLE_RATE

    # not asyncio.run: it makes Ctrl-C cancel the session, where on a live stream it must
    # end the stream instead (`pcm_pieces`), so its last segment still comes out
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(feed())
    finally:
        loop.close()


def audio_pieces(audio: np.ndarray, seconds: float = PIECE_SECONDS) -> Iterator[np.ndarray]:
    step = int(seconds * SAMPLE_RATE)
    for start in range(0, len(audio), step):
        yield audio[start : start + step]


def pcm_pieces(stream: BinaryIO, rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """16 kHz float32 pieces of raw s16le mono PCM at `rate`, each as soon as its bytes
    arrive (`read1` returns what a pipe holds), so a live microphone is heard live."""
    import soxr

    resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1) if rate != SAMPLE_RATE else None
    size, rest = 2 * int(rate * READ_SECONDS), b""
    try:
        while data := stream.read1(size):
            data = rest + data
            whole = len(data) - len(data) % 2  # a read may end inside a sample
            pcm = np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768.0
            rest = data[whole:]
            yield resampler.resample_chunk(pcm) if resampler else pcm
    except KeyboardInterrupt:  # Ctrl-C while listening ends the stream: its last words count
        pass
    if resampler:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _clock(seconds: float, decimal: str) -> str:
    """01:02:03,456 (SRT) or 01:02:03.456 (VTT)."""
    minutes, ms = divmod(round(seconds * 1000), 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{ms // 1000:02d}{decimal}{ms % 1000:03d}"


class Output:
    """Writes one run: finals to `out` as they come in `fmt` (text: a line each; srt and
    vtt: a cue each; json: one line per input once it ends), partials to `err`."""

    def __init__(self, fmt: str, out: TextIO, err: TextIO):
        self.fmt, self.out, self.err = fmt, out, err
        self._terminal = err.isatty()  # partials overwrite one status line there
        self._finals: list[Event] = []

    def begin(self, name: str, header: bool) -> None:
        """A new input; `header` names it first (text, srt and vtt of several inputs)."""
        self._finals = []
        if header and self.fmt != "json":
            print(f"==> {name} <==", file=self.out)
        if self.fmt == "vtt":
            print("WEBVTT\n", file=self.out, flush=True)

    def event(self, event: Event) -> None:
        if event.type == "partial":
            line = f"... {event.text}"
            if self._terminal:
                print(f"\r\033[K{line[-100:]}", end="", file=self.err, flush=True)
            else:
                print(line, file=self.err, flush=True)
            return
        if self._terminal:
            print("\r\033[K", end="", file=self.err, flush=True)
        self._finals.append(event)
        if self.fmt != "json":
            print(self._cue(len(self._finals), event), file=self.out, flush=True)

    def _cue(self, index: int, event: Event) -> str:
        if self.fmt == "text":
            return event.text
        times = f"{_clock(event.start, ',')} --> {_clock(event.end, ',')}"
        if self.fmt == "srt":
            return f"{index}\n{times}\n{event.text}\n"
        return f"{times.replace(',', '.')}\n{event.text}\n"

    def end(self, name: str, seconds: float) -> None:
        if self.fmt == "json":
            segments = [{"start": e.start, "end": e.end, "text": e.text} for e in self._finals]
            text = " ".join(e.text for e in self._finals)
            result = {"file": name, "duration": round(seconds, 3), "text": text}
            print(json.dumps({**result, "segments": segments}), file=self.out, flush=True)


def run(options: TranscribeOptions) -> None:
    """The `transcribe` command with an export directory: each input in turn. An input
    that is not audio is reported and skipped; the command then exits with status 1."""
    int8 = True if options.int8 else None  # else the graphs the export has, fp32 first
    model = load_export(options.model, int8, options.threads)
    output = Output(options.response_format, sys.stdout, sys.stderr)
    failed = 0
    for name in options.files:
        try:
            if name == "-":
                pieces = pcm_pieces(sys.stdin.buffer, options.sample_rate)
            else:
                pieces = audio_pieces(load_audio(name))
        except AudioError as err:
            print(f"audiodistill transcribe: {err}", file=sys.stderr)
            failed += 1
            continue
        output.begin(name, header=len(options.files) > 1)
        output.end(name, run_session(engine_for(model), pieces, output.event))
    if failed:
        raise SystemExit(1)
