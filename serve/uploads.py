"""Reading `POST /v1/audio/transcriptions` without trusting it.

The API key is checked before this runs; here the declared `Content-Length` is checked
before any of the body is read, the body is parsed as it streams in with a running byte
count (a client that lies about, or omits, its length is cut off at the limit), and the
file part is spooled to disk past 1 MB, so an upload is never held whole in gateway memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from serve.formats import RESPONSE_FORMATS, ApiError

# what a multipart body may hold beside the file: the form fields and part headers
MULTIPART_SLACK = 64 * 1024
# OpenAI's form fields (and the SDK's) are few; more than this is not a transcription request
MAX_FIELDS = 32
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no", "")
GRANULARITIES = ("word", "segment")  # OpenAI's timestamp_granularities[] values


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"file is over the {max_bytes / 1e6:g} MB limit", "file_too_large", "file")


async def read_form(request: Request, max_file_bytes: int) -> FormData:
    """The multipart form of `request`, refused (413) as soon as it is known to be too big."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            400, "the body must be multipart/form-data with a file field", "invalid_request"
        )
    limit = max_file_bytes + MULTIPART_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(max_file_bytes)
    body = _counted(request.stream(), limit, max_file_bytes)
    parser = MultiPartParser(request.headers, body, max_files=4, max_fields=MAX_FIELDS)
    try:
        return await parser.parse()
    except MultiPartException as err:
        raise ApiError(400, f"malformed form: {err.message}", "invalid_request") from err


async def _counted(stream: AsyncIterator[bytes], limit: int, max_file_bytes: int):
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise too_large(max_file_bytes)
        yield chunk


@dataclass(frozen=True)
class TranscriptionRequest:
    """The form fields of a transcription request (OpenAI's names)."""

    file: UploadFile
    model: str | None
    language: str | None
    prompt: str | None
    response_format: str
    stream: bool
    # timestamp_granularities[] holds "word": verbose_json gives `words`, srt and vtt give
    # one cue per word (segments are always given)
    words: bool = False


def parse_request(form: FormData, max_file_bytes: int) -> TranscriptionRequest:
    """The request in `form`, or a 400 / 413 naming the field at fault. Fields OpenAI
    defines and this server does not use (temperature, include...) are accepted, ignored."""
    files = form.getlist("file")
    if not files:
        raise ApiError(400, "file: field required", "invalid_request", "file")
    if len(files) > 1:
        raise ApiError(400, f"file: one per request, got {len(files)}", "invalid_request", "file")
    file = files[0]
    if not isinstance(file, UploadFile):
        raise ApiError(400, "file: must be a file upload, not text", "invalid_request", "file")
    if file.size is not None and file.size > max_file_bytes:
        raise too_large(max_file_bytes)
    response_format = _text(form, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        allowed = ", ".join(RESPONSE_FORMATS)
        raise ApiError(
            400, f"response_format must be one of {allowed}", "invalid_value", "response_format"
        )
    stream = (_text(form, "stream") or "").lower()
    if stream not in TRUE + FALSE:
        raise ApiError(400, "stream: must be true or false", "invalid_value", "stream")
    return TranscriptionRequest(
        file=file,
        model=_text(form, "model"),
        language=_text(form, "language"),
        prompt=_text(form, "prompt"),
        response_format=response_format,
        stream=stream in TRUE,
        words="word" in _granularities(form),
    )


def _granularities(form: FormData) -> list[str]:
    """The timestamp_granularities[] values (a list: the field repeats, one value each;
    the bare name is taken too), each "word" or "segment"."""
    name = "timestamp_granularities"
    values = form.getlist(name + "[]") + form.getlist(name)
    for value in values:
        if value not in GRANULARITIES:
            raise ApiError(
                400,
                f"{name}[]: each must be one of {', '.join(GRANULARITIES)}, got {str(value)!r}",
                "invalid_value",
                name,
            )
    return values


def _text(form: FormData, name: str) -> str | None:
    """A text field (None when absent or empty); a repeated one is refused, not guessed."""
    values = form.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"{name}: given {len(values)} times", "invalid_request", name)
    if values and not isinstance(values[0], str):
        raise ApiError(400, f"{name}: must be text, not a file", "invalid_request", name)
    return values[0] or None if values else None
