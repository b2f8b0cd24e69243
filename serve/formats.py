"""Response bodies of `POST /v1/audio/transcriptions`, shaped as OpenAI's API shapes them."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse, PlainTextResponse, Response

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str


def _clock(seconds: float, decimal: str) -> str:
    """01:02:03,456 (SRT) or 01:02:03.456 (VTT)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def srt(segments: list[Segment]) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[Segment]) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def verbose_json(segments: list[Segment], duration: float, language: str) -> dict:
    return {
        "task": "transcribe",
        "language": language,
        "duration": round(duration, 3),
        "text": " ".join(s.text for s in segments),
        "segments": [
            {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
            for i, s in enumerate(segments)
        ],
    }


class ApiError(Exception):
    """An HTTP error with OpenAI's error body."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def render(response_format: str, segments: list[Segment], duration: float, language: str):
    """The response for a transcription in `response_format` (one of RESPONSE_FORMATS)."""
    text = " ".join(s.text for s in segments)
    body: Response
    if response_format == "json":
        body = JSONResponse({"text": text})
    elif response_format == "text":
        body = PlainTextResponse(text)
    elif response_format == "verbose_json":
        body = JSONResponse(verbose_json(segments, duration, language))
    else:
        body = PlainTextResponse(srt(segments) if response_format == "srt" else vtt(segments))
    return body


def error_body(message: str, code: str, param: str | None = None) -> dict:
    """OpenAI's error shape, which its SDK turns into a typed exception with this message."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
