"""Online recognition: audio arrives in pieces, text comes back as it firms up.

An `OnlineSession` cuts a live stream into segments with voice-activity detection and
reports `partial` events (text of the open segment, may still change) and `final` events
(a closed segment's text with its times, never revised). What turns audio into text is an
`Engine`:

- `CtcEngine` for the streaming student: runs natively chunk by chunk, carrying the
  encoder state; the partial text is its CTC decoder's best so far.
- `RecognizerEngine` for a recognizer that keeps its own stream state (the edge runtime's
  streaming recognizers; whisper-causal, whose decoder reads the causal encoder's states
  so far): partials as it decodes them, the final from the same states.
- `LocalAgreementEngine` for Whisper-type models, which only transcribe whole clips: it
  re-transcribes the open segment's growing buffer every `decode_every_s` and shows the
  words that two consecutive hypotheses agree on first (the LocalAgreement-2 policy of
  Machacek et al., 2023, "Turning Whisper into Real-Time Transcription System").

Engines take their model as an async callable, so the same session code runs in-process
(tests, the CLI) or against a remote model server (Ray Serve), where many streams' calls
are batched together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import numpy as np

from audiodistill.data.audio import HOP_LENGTH, SAMPLE_RATE
from audiodistill.decoding.ctc_alignment import ctc_words
from audiodistill.decoding.ctc_decoder import CtcDecoder
from audiodistill.decoding.words import Word, shifted, snap_to_speech, words_text
from audiodistill.edge.features import ChunkQueue, Step
from audiodistill.online.vad import EnergyVad, VadOptions

# features [n, n_mels] and a stream state (None: new stream) -> CTC log-probs [T, V], new state
StepFn = Callable[[np.ndarray, dict | None], Awaitable[tuple[np.ndarray, dict]]]
TranscribeFn = Callable[[np.ndarray], Awaitable[str]]
# a clip -> its words, times from the clip's start
TranscribeWordsFn = Callable[[np.ndarray], Awaitable[list[Word]]]
T = TypeVar("T")
# runs a blocking call of a recognizer: in the caller's thread, or in a worker thread so an
# event loop serving other streams is not held up
RunFn = Callable[[Callable[[], T]], Awaitable[T]]
# a session checks for the end of a segment every few VAD frames (3 x 30 ms), however
# large the pieces a client sends
SLICE_FRAMES = 3
# a whole clip goes through the VAD 2,000 frames (60 s) at a time
VAD_BLOCK_FRAMES = 2_000


@dataclass(frozen=True)
class OnlineOptions:
    # endpointing: what counts as speech and how long a pause closes a segment
    vad: VadOptions = VadOptions()
    # LocalAgreement engines re-transcribe the open segment after this much new audio
    decode_every_s: float = 1.0
    # a segment is closed after this long even without a pause (Whisper hears 30 s at most)
    max_segment_s: float = 25.0
    # an open segment with no speech for this long is discarded (silence never gives text)
    idle_drop_s: float = 2.0

    def __post_init__(self) -> None:
        if self.decode_every_s <= 0 or self.max_segment_s <= 0 or self.idle_drop_s <= 0:
            raise ValueError("decode_every_s, max_segment_s and idle_drop_s must be > 0")


@dataclass
class Event:
    """What a session reports. Times are seconds of stream audio from its start."""

    type: str  # "partial" (may change), "final" (never revised), or "speech" (see OnlineSession)
    text: str
    start: float  # where the segment's speech starts
    end: float  # partial: audio received so far; final: the end of the segment's speech
    words: list[Word] | None = None  # a final's timed words, when the engine was asked

    def to_dict(self) -> dict:
        out = {"type": self.type, "text": self.text, "start": self.start, "end": self.end}
        if self.words is not None:
            out["words"] = [w.to_dict() for w in self.words]
        return out


class Engine(Protocol):
    """Turns a stream's audio into text. An engine asked for word times also sets
    `final_words` in `end_segment`: the final text's words, in seconds of stream audio."""

    async def accept(self, pcm: np.ndarray, speech: bool) -> str:
        """Take 16 kHz float32 samples; return the open segment's text so far. `speech`
        says whether the segment has had speech yet (an engine may skip work until then)."""

    async def end_segment(self, flush: bool) -> str:
        """The open segment's final text; the next `accept` opens a new segment. `flush`:
        the stream has ended, use every sample held back."""

    async def drop_segment(self) -> None:
        """Forget the open segment's text (it had no speech)."""


class CtcEngine:
    """A streaming CTC student run chunk by chunk through `step`, as `queue` plans the steps
    (streaming.chunk_queue); `pad_samples` zeros go before the stream's audio (the encoder's
    `feature_pad_samples`). With `words`, a final's words are timed from the frames its
    text was decoded from (ctc_alignment) and snapped to the segment's speech."""

    def __init__(
        self,
        step: StepFn,
        decoder: CtcDecoder,
        queue: ChunkQueue,
        pad_samples: int = 0,
        words: bool = False,
    ):
        from audiodistill.students.log_mel import FeatureStreamer

        self._step = step
        self._decoder = decoder
        self._chunks = queue
        self._features = FeatureStreamer(pad_samples)
        self._state: dict | None = None
        self._words = words
        self._frame_seconds = queue.subsampling * HOP_LENGTH / SAMPLE_RATE  # one CTC frame
        self._frames = 0  # CTC frames of the stream so far
        self._received = 0  # stream samples so far
        self.final_words: list[Word] | None = None
        self._reset()

    def _reset(self) -> None:
        self._segment, self._text = self._decoder.stream(), ""  # the open segment's decoding
        self._logprobs: list[np.ndarray] = []  # its frames, and its audio (words only)
        self._audio: list[np.ndarray] = []
        self._audio_start = self._received  # the stream sample its audio starts at

    async def accept(self, pcm: np.ndarray, speech: bool) -> str:
        self._received += len(pcm)
        if self._words:
            self._audio.append(pcm)
        for step in self._chunks.push(self._features.accept(pcm).numpy()):
            await self._run(step)
        return self._text

    async def end_segment(self, flush: bool) -> str:
        if flush:  # the stream's last, shorter chunk
            last = self._chunks.flush()
            if last is not None:
                await self._run(last)
        text = self._segment.finalize()
        if self._words:
            self.final_words = self._timed(text)
        self._reset()
        return text

    async def drop_segment(self) -> None:
        self._reset()

    def _timed(self, text: str) -> list[Word]:
        """The words of the open segment's final `text`, in seconds of stream audio."""
        if not self._logprobs:
            return []
        logprobs = np.concatenate(self._logprobs)
        first = (self._frames - len(logprobs)) * self._frame_seconds
        d = self._decoder
        words = ctc_words(logprobs, text, d.symbols, d.blank, self._frame_seconds, first)
        start, audio = self._audio_start / SAMPLE_RATE, np.concatenate(self._audio)
        return shifted(snap_to_speech(shifted(words, -start), audio), start)

    async def _run(self, step: Step) -> None:
        if step.restart is not None:  # a fresh state (None) primed with the left context
            self._state = None
            for features in step.restart:
                _, self._state = await self._step(features, self._state)
        logprobs, self._state = await self._step(step.features, self._state)
        self._frames += len(logprobs)
        if self._words:
            self._logprobs.append(logprobs)
        self._text = self._segment.accept(logprobs)


class Recognizer(Protocol):
    """A live stream's recognizer that keeps the stream's state itself."""

    def accept(self, pcm: np.ndarray, partial: bool = True) -> str:
        """Take 16 kHz float32 samples; return the partial text. `partial=False`: a costly
        partial decode may wait (the segment has had no speech yet)."""

    def end_segment(self) -> str:
        """The text so far as final; the next audio starts a new segment."""

    def finalize(self) -> str:
        """As `end_segment`, using every sample held back (the stream has ended)."""

    def drop(self) -> None:
        """Forget the open segment's text without decoding it."""

    # a recognizer built to time words: the last final's, seconds from the segment's start
    last_words: list[Word]


async def run_inline(call: Callable[[], T]) -> T:
    return call()


class RecognizerEngine:
    """A `Recognizer` as a session's engine. Its calls block for as long as the model
    computes, so they go through `run`: inline for one stream in-process, a worker thread
    in a server. With `words` (a recognizer built to time them), a final's words are
    snapped to the segment's speech and given in seconds of stream audio."""

    def __init__(self, recognizer: Recognizer, run: RunFn = run_inline, words: bool = False):
        self.recognizer = recognizer
        self._run = run
        self._words = words
        self.final_words: list[Word] | None = None
        self._received = 0  # stream samples so far
        self._next_segment()

    def _next_segment(self) -> None:
        self._start = self._received  # the stream sample the open segment starts at
        self._audio: list[np.ndarray] = []  # its audio (words only)

    async def accept(self, pcm: np.ndarray, speech: bool) -> str:
        self._received += len(pcm)
        if self._words:
            self._audio.append(pcm)
        return await self._run(partial(self.recognizer.accept, pcm, speech))

    async def end_segment(self, flush: bool) -> str:
        r = self.recognizer
        text = await self._run(r.finalize if flush else r.end_segment)
        if self._words:
            audio = np.concatenate([np.zeros(0, np.float32), *self._audio])
            timed = snap_to_speech(r.last_words, audio)
            self.final_words = shifted(timed, self._start / SAMPLE_RATE)
        self._next_segment()
        return text

    async def drop_segment(self) -> None:
        await self._run(self.recognizer.drop)
        self._next_segment()


def agreed_prefix(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """The longest common prefix of two word sequences."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return list(a[:n])


class LocalAgreementEngine:
    """A whole-clip transcriber streamed by re-decoding a growing buffer (LocalAgreement-2).

    Words are committed once two consecutive hypotheses agree on them; the partial text is
    the committed words followed by the newest hypothesis's unconfirmed rest. The final text
    is one transcription of the whole segment, so it equals the offline transcript of the
    same audio.
    """

    def __init__(
        self,
        transcribe: TranscribeFn,
        decode_every_s: float = 1.0,
        transcribe_words: TranscribeWordsFn | None = None,
    ):
        self._transcribe = transcribe
        self._decode_every = int(decode_every_s * SAMPLE_RATE)
        self._transcribe_words = transcribe_words  # given: finals are timed word by word
        self.final_words: list[Word] | None = None
        self._received = 0  # stream samples so far
        self._reset()

    def _reset(self) -> None:
        self._start = self._received  # the stream sample the open segment starts at
        self._pieces: list[np.ndarray] = []
        self._undecoded = 0  # samples received since the last decode
        self._previous: list[str] = []  # the last hypothesis, in words
        self._committed: list[str] = []

    async def accept(self, pcm: np.ndarray, speech: bool) -> str:
        self._received += len(pcm)
        self._pieces.append(np.asarray(pcm, dtype=np.float32))
        self._undecoded += len(pcm)
        if speech and self._undecoded >= self._decode_every:
            self._undecoded = 0
            words = (await self._transcribe(np.concatenate(self._pieces))).split()
            agreed = agreed_prefix(self._previous, words)
            if len(agreed) > len(self._committed) and agreed[: len(self._committed)] == (
                self._committed
            ):
                self._committed = agreed
            self._previous = words
        return " ".join([*self._committed, *self._previous[len(self._committed) :]])

    async def end_segment(self, flush: bool) -> str:
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32)
        start = self._start / SAMPLE_RATE
        self._reset()
        if self._transcribe_words is None:
            return (await self._transcribe(audio)).strip() if len(audio) else ""
        words = await self._transcribe_words(audio) if len(audio) else []
        self.final_words = shifted(words, start)
        return words_text(words)

    async def drop_segment(self) -> None:
        self._reset()


@dataclass(frozen=True)
class Segment:
    """A closed segment of a stream or clip, in 16 kHz samples from its start."""

    start: int  # the first sample the engine was given for it (where it opened)
    end: int  # where it closed: the engine's text covers audio[start:end]
    speech_start: int  # its first speech frame
    speech_end: int  # after its last speech frame (the close point when cut mid-speech)


class Segmenter:
    """Where a stream's segments open and close, decided every few VAD frames.

    A segment with speech closes at a pause of `min_silence_ms` or once `max_segment_s`
    long; one that has had no speech for `idle_drop_s` is dropped and a new one opens. Live
    sessions and whole-clip transcription (`clip_segments`) both cut here, so a file gives
    the same segments, and so the same text, over HTTP as over a stream.
    """

    CLOSE, DROP = "close", "drop"

    def __init__(self, options: OnlineOptions = OnlineOptions()):
        self.options = options
        self.frame = options.vad.frame_samples
        self._min_speech = -(-options.vad.min_speech_ms // options.vad.frame_ms)  # frames
        self._min_silence = options.vad.min_silence_ms // options.vad.frame_ms  # frames
        self.samples = 0  # samples seen
        self._frames = 0  # VAD frames decided so far
        self.open(0)

    def open(self, start: int) -> None:
        self.start = start  # sample where the open segment begins
        self._speech_frames = 0
        self._silence_run = 0  # non-speech frames since the last speech frame
        self.speech_start: int | None = None  # sample where the segment's speech begins
        self._speech_end = start  # sample after the last speech frame

    @property
    def has_speech(self) -> bool:
        return self._speech_frames >= self._min_speech

    def advance(self, flags: Sequence[bool], samples: int) -> str | None:
        """Take the VAD decisions of frames completed by `samples` more samples; say whether
        the open segment must now close (CLOSE), be dropped (DROP), or go on (None)."""
        for speech in flags:
            self._frames += 1
            if speech:
                self._speech_frames += 1
                self._silence_run = 0
                self._speech_end = self._frames * self.frame
                if self.speech_start is None:
                    self.speech_start = max(self._speech_end - self.frame, self.start)
            else:
                self._silence_run += 1
        self.samples += samples
        open_s = (self.samples - self.start) / SAMPLE_RATE
        if self.has_speech and (
            self._silence_run >= self._min_silence or open_s >= self.options.max_segment_s
        ):
            return self.CLOSE
        if not self.has_speech and open_s >= self.options.idle_drop_s:
            return self.DROP
        return None

    def close(self) -> Segment:
        """The open segment, closed now; the next one opens here."""
        speech_start = self.start if self.speech_start is None else self.speech_start
        end = max(self._speech_end, speech_start)
        if self._silence_run < self._min_silence:  # closed mid-speech: it ends now
            end = self.samples
        segment = Segment(self.start, self.samples, speech_start, end)
        self.open(self.samples)
        return segment


def slices(pcm: np.ndarray, done: int, frame: int):
    """`pcm`, which follows `done` samples of its stream, cut so every slice ends on a
    boundary of SLICE_FRAMES VAD frames (counted from the stream's start)."""
    step = SLICE_FRAMES * frame
    first = step - done % step
    yield pcm[:first]
    for start in range(first, len(pcm), step):
        yield pcm[start : start + step]


def clip_segments(audio: np.ndarray, options: OnlineOptions = OnlineOptions()) -> list[Segment]:
    """The segments a live session would cut `audio` into (only those with speech): how
    whole files are transcribed, a piece at a time, with silence never reaching a model."""
    segmenter, vad = Segmenter(options), EnergyVad(options.vad)
    block = VAD_BLOCK_FRAMES * segmenter.frame  # the VAD's float64 powers stay small
    flags = [f for i in range(0, len(audio), block) for f in vad.accept(audio[i : i + block])]
    per_slice, segments = SLICE_FRAMES, []
    for i, piece in enumerate(slices(audio, 0, segmenter.frame)):
        decided = flags[i * per_slice : (i + 1) * per_slice] if len(piece) else []
        verdict = segmenter.advance(decided, len(piece))
        if verdict == Segmenter.CLOSE:
            segments.append(segmenter.close())
        elif verdict == Segmenter.DROP:
            segmenter.open(segmenter.samples)
    if segmenter.has_speech:
        segments.append(segmenter.close())
    return segments


class OnlineSession:
    """One live stream: VAD segmentation around an engine, producing partial/final events.

    With `speech_events`, it also reports a "speech" event (empty text, `start` where the
    speech began) when a segment first counts as speech, and a segment's "final" even when
    its text is empty: the Realtime API announces every turn it detects and ends it.
    """

    def __init__(
        self, engine: Engine, options: OnlineOptions = OnlineOptions(), speech_events: bool = False
    ):
        self.engine = engine
        self.options = options
        self.speech_events = speech_events
        self._vad = EnergyVad(options.vad)
        self._segments = Segmenter(options)
        self._partial = ""
        self._announced = False  # the open segment's "speech" event was sent

    @property
    def samples(self) -> int:
        """Stream samples received."""
        return self._segments.samples

    async def accept(self, pcm: np.ndarray) -> list[Event]:
        """Feed 16 kHz float32 samples (any count); return the events they caused.

        A large piece is taken a few VAD frames at a time, so a pause inside it still
        closes a segment where the pause is, not at the end of the piece.
        """
        events, text, segments = [], self._partial, self._segments
        pcm = np.asarray(pcm, dtype=np.float32).ravel()
        for piece in slices(pcm, segments.samples, segments.frame):
            verdict = segments.advance(self._vad.accept(piece), len(piece))
            if self.speech_events and segments.has_speech and not self._announced:
                self._announced = True
                at = _seconds(segments.speech_start)
                events.append(Event("speech", "", at, _seconds(segments.samples)))
            text = await self.engine.accept(piece, segments.has_speech)
            if verdict == Segmenter.CLOSE:
                events += await self._close(flush=False)
                text = ""
            elif verdict == Segmenter.DROP:
                await self.engine.drop_segment()
                segments.open(segments.samples)
                self._partial = text = ""
        if segments.has_speech and text and text != self._partial:
            self._partial = text
            start = _seconds(segments.speech_start)
            events.append(Event("partial", text, start, _seconds(segments.samples)))
        return events

    async def finish(self) -> list[Event]:
        """The stream has ended: the last segment's final event, if it had speech."""
        if self._segments.has_speech:
            return await self._close(flush=True)
        await self.engine.end_segment(flush=True)
        return []

    async def _close(self, flush: bool) -> list[Event]:
        text = await self.engine.end_segment(flush)
        segment = self._segments.close()
        self._partial, self._announced = "", False
        start, end = _seconds(segment.speech_start), _seconds(segment.speech_end)
        words = getattr(self.engine, "final_words", None)  # engines asked for word times
        return [Event("final", text, start, end, words)] if text or self.speech_events else []


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)
