"""Response bodies of `POST /v1/audio/transcriptions`, shaped as OpenAI's API shapes them."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse, PlainTextResponse, Response

from audiodistill.decoding.words import Word

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


@dataclass
class TimedText:
    """A piece of a transcript with its times: a response segment or a subtitle cue."""

    start: float  # seconds
    end: float
    text: str
    words: list[Word] | None = None  # its timed words, when the request asked for them


def _clock(seconds: float, decimal: str) -> str:
    """01:02:03,456 (SRT) or 01:02:03.456 (VTT)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def srt(segments: list[TimedText]) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[TimedText]) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def verbose_json(
    segments: list[TimedText], duration: float, language: str, words: bool = False
) -> dict:
    body = {
        "task": "transcribe",
        "language": language,
        "duration": round(duration, 3),
        "text": " ".join(s.text for s in segments),
        "segments": [
            {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
            for i, s in enumerate(segments)
        ],
    }
    if words:  # OpenAI's field: every word of the file, in order
        body["words"] = [w.to_dict() for s in segments for w in s.words or ()]
    return body


def word_cues(segments: list[TimedText]) -> list[TimedText]:
    """One cue per word (srt and vtt with word timestamps asked for)."""
    return [TimedText(w.start, w.end, w.text) for s in segments for w in s.words or ()]


class ApiError(Exception):
    """An HTTP error with OpenAI's error body."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def render(
    response_format: str,
    segments: list[TimedText],
    duration: float,
    language: str,
    words: bool = False,
):
    """The response for a transcription in `response_format` (one of RESPONSE_FORMATS);
    `words`: the segments hold timed words, and the format shows them."""
    text = " ".join(s.text for s in segments)
    body: Response
    if response_format == "json":
        body = JSONResponse({"text": text})
    elif response_format == "text":
        body = PlainTextResponse(text)
    elif response_format == "verbose_json":
        body = JSONResponse(verbose_json(segments, duration, language, words))
    else:
        cues = word_cues(segments) if words else segments
        body = PlainTextResponse(srt(cues) if response_format == "srt" else vtt(cues))
    return body


def error_body(message: str, code: str, param: str | None = None) -> dict:
    """OpenAI's error shape, which its SDK turns into a typed exception with this message."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
