"""The Ray Serve application: a FastAPI gateway in front of one deployment per model.

    client --HTTP/WebSocket--> Serve proxy --> Gateway (validation, sessions, metrics)
                                                  |-- handle --> ModelDeployment "m1" (batched)
                                                  '-- handle --> ModelDeployment "m2" (batched)

The gateway owns everything per-client: request validation, live-stream sessions
(audiodistill.online.streams), limits and metrics. Model deployments are stateless and batch whole
clips across requests with `@serve.batch` (HTTP uploads, LocalAgreement decodes).

Streaming students also run inside each gateway replica, batched across that replica's
streams with `@serve.batch`: a stream's encoder state (about 0.3-0.9 MB) then never leaves
the process. Shipping it to a model replica and back on every 320 ms chunk made step calls
10x slower at 10 streams on 2 cores (benchmarks/serve_load.py). Scale streams by adding
gateway replicas. Heavy libraries load in the deployments' constructors.
"""

# no `from __future__ import annotations`: FastAPI must see real types on the ingress methods
import asyncio
import json
import logging
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.websockets import WebSocketDisconnect, WebSocketState

from audiodistill.data.audio import SAMPLE_RATE, AudioError, AudioTooLong, load_audio
from audiodistill.decoding.words import Word, shifted, words_text
from audiodistill.online.served_model import ModelInfo, model_id
from audiodistill.online.streams import (
    CtcEngine,
    LocalAgreementEngine,
    OnlineSession,
    RecognizerEngine,
    Segment,
    clip_segments,
)
from audiodistill.progress import Stages
from serve import formats, realtime, uploads
from serve.formats import ApiError
from serve.metrics import GatewayMetrics
from serve.options import DeploymentOptions, ServeOptions
from serve.protocol import (
    CLOSE_BUSY,
    CLOSE_INTERNAL,
    CLOSE_INVALID,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    FlowWindow,
    PcmDecoder,
    ProtocolError,
    event,
    parse_config,
    parse_control,
)

logger = logging.getLogger("ray.serve")  # lands in the replica's Serve log
API_KEY_ENV = "AUDIODISTILL_API_KEY"


@serve.deployment
class ModelDeployment:
    """One served model. Batched methods run in a worker thread, so the next batch can
    gather while this one computes."""

    def __init__(self, spec: str, options: DeploymentOptions):
        from audiodistill.online.served_model import ServedModel

        self.model = ServedModel(spec, options.threads, options.chunk_ms)
        for lane in (self.transcribe, self.transcribe_long, self.transcribe_words):
            lane.set_max_batch_size(options.max_batch_size)
            lane.set_batch_wait_timeout_s(options.batch_wait_ms / 1000)

    def info(self) -> dict:
        return self.model.info.to_dict()

    @serve.batch
    async def transcribe(self, audios: list[np.ndarray], prompts: list[str | None]) -> list[str]:
        """Short requests: single-segment uploads and live streams' decodes."""
        return await asyncio.to_thread(self.model.transcribe_prompted, audios, prompts)

    @serve.batch
    async def transcribe_long(
        self, audios: list[np.ndarray], prompts: list[str | None]
    ) -> list[str]:
        """Segments of multi-segment uploads: batched in a lane of their own that runs beside
        `transcribe` (the model takes two calls at once), so a short request never waits
        behind a long file's batch."""
        return await asyncio.to_thread(self.model.transcribe_prompted, audios, prompts)

    @serve.batch
    async def transcribe_words(
        self, audios: list[np.ndarray], prompts: list[str | None]
    ) -> list[list[Word]]:
        """Timed words (uploads that ask for them, stream finals that do): a lane of their
        own, as aligning costs more than transcribing."""
        return await asyncio.to_thread(self.model.transcribe_prompted, audios, prompts, True)


app = FastAPI(title="audiodistill", description="Streaming and batch speech recognition")


@app.exception_handler(ApiError)
async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    return JSONResponse(formats.error_body(err.message, err.code, err.param), err.status)


def _rss_mb() -> float | None:
    """This process's resident memory in MB (Linux; None elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), None)
    return None if kb is None else round(kb / 1024, 1)


@serve.deployment
@serve.ingress(app)
class Gateway:
    def __init__(
        self,
        models: dict[str, DeploymentHandle],
        streaming_specs: dict[str, str],
        options: ServeOptions,
    ):
        from audiodistill.online.served_model import ServedModel

        deployment = options.deployment
        self.local = {  # streaming students, stepped here so stream state stays in-process
            mid: ServedModel(spec, deployment.threads, deployment.chunk_ms)
            for mid, spec in streaming_specs.items()
        }
        # whisper-causal computes one stream's call at a time per model, in a worker thread:
        # streams queue in order instead of splitting the replica's threads between them
        self._turns = {mid: asyncio.Lock() for mid in self.local}
        self._step_streams.set_max_batch_size(deployment.max_batch_size)
        self._step_streams.set_batch_wait_timeout_s(deployment.batch_wait_ms / 1000)
        self.models = models
        self.default_model = next(iter(models))
        self.options = options
        self.limits = options.limits
        self.api_key = options.api_key or os.environ.get(API_KEY_ENV) or None
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.metrics = GatewayMetrics(self.replica)
        self._infos: dict[str, ModelInfo] = {}
        self._streams = 0

    async def _model(self, name: str | None) -> tuple[DeploymentHandle, ModelInfo]:
        name = name or self.default_model
        if name not in self.models:
            known = ", ".join(self.models)
            raise ApiError(
                404, f"model {name!r} is not served (served: {known})", "model_not_found", "model"
            )
        if name not in self._infos:
            self._infos[name] = ModelInfo(**await self.models[name].info.remote())
        return self.models[name], self._infos[name]

    def _authorized(self, headers, query=None) -> bool:
        if self.api_key is None:
            return True
        bearer = headers.get("authorization", "")
        given = bearer[7:] if bearer.lower().startswith("bearer ") else (query or {}).get("api_key")
        return given == self.api_key

    def _require_key(self, request: Request) -> None:
        if not self._authorized(request.headers):
            raise ApiError(
                401, "missing or wrong API key (Authorization: Bearer KEY)", "invalid_api_key"
            )

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {
            "status": "ok",
            "models": list(self.models),
            "active_streams": self._streams,
            "replica": self.replica,  # Serve's proxy picks which replica answers
            "rss_mb": _rss_mb(),
        }

    @app.get("/metrics")
    async def metrics(self) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(self, request: Request) -> dict:
        self._require_key(request)
        data = []
        for name in self.models:
            _, info = await self._model(name)
            # OpenAI's model object, plus what a client needs to pick one (extra fields are
            # allowed; the SDK keeps them)
            fields = ("kind", "streaming", "takes_prompt", "word_times", "parameters")
            extra = {k: getattr(info, k) for k in fields}
            data.append(
                {"id": name, "object": "model", "created": 0, "owned_by": "audiodistill", **extra}
            )
        return {"object": "list", "data": data}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(self, request: Request) -> Response:
        """OpenAI's transcription endpoint. Read by hand, not by FastAPI's form parameters,
        so the key and the declared length are checked before the body is read."""
        started = time.perf_counter()
        try:
            self._require_key(request)
            max_bytes = int(self.limits.max_upload_mb * 1_000_000)
            form = await uploads.read_form(request, max_bytes)
            try:
                parsed = uploads.parse_request(form, max_bytes)
                response, model = await self._transcribe_upload(parsed)
            finally:
                await form.close()
        except ApiError as err:
            self._count("transcriptions", str(err.status), err.code)
            raise
        self._count("transcriptions", "200")
        self.metrics.latency.record(time.perf_counter() - started, model)
        return response

    def _count(self, route: str, status: str, reason: str | None = None) -> None:
        self.metrics.requests.record(1, route, status)
        if reason is not None:
            self.metrics.errors.record(1, route, reason)

    async def _transcribe_upload(self, req: uploads.TranscriptionRequest):
        """A whole file, cut into segments the way a live stream of it would be (so the
        text is the same on both paths), each transcribed as a request of its own."""
        handle, info = await self._model(req.model)
        if req.language not in (None, info.language):
            raise ApiError(
                400,
                f"model {info.id!r} transcribes {info.language!r} only",
                "unsupported_language",
                "language",
            )
        if req.words and not info.word_times:
            message = f"model {info.id!r} gives no word times"
            raise ApiError(400, message, "unsupported_value", "timestamp_granularities")
        audio = await self._read_audio(req.file)
        self.metrics.audio_seconds.record(len(audio) / SAMPLE_RATE, info.id, "transcriptions")
        segments = await asyncio.to_thread(clip_segments, audio, self.options.online)
        words = req.words and not req.stream
        texts = self._transcribe_segments(handle, audio, segments, req.prompt, words)
        if req.stream:
            events = self._sse(texts)
            return StreamingResponse(events, media_type="text/event-stream"), info.id
        try:
            done = await asyncio.gather(*texts)
        finally:
            for task in texts:  # one failed: the others stop too
                task.cancel()
        timed = [
            formats.TimedText(s.speech_start / SAMPLE_RATE, s.speech_end / SAMPLE_RATE, text, w)
            for s, (text, w) in zip(segments, done, strict=True)
            if text
        ]
        duration = len(audio) / SAMPLE_RATE
        body = formats.render(req.response_format, timed, duration, info.language, words)
        return body, info.id

    async def _read_audio(self, file) -> np.ndarray:
        if not file.size:
            raise ApiError(400, "file is empty", "invalid_file", "file")
        try:
            return await asyncio.to_thread(load_audio, file.file, self.limits.max_audio_seconds)
        except AudioTooLong as err:
            raise ApiError(
                413,
                f"audio is over the {self.limits.max_audio_seconds:g} s limit",
                "audio_too_long",
                "file",
            ) from err
        except AudioError as err:
            raise ApiError(
                400, f"could not read the audio file: {err}", "invalid_file", "file"
            ) from err

    def _transcribe_segments(
        self,
        handle,
        audio: np.ndarray,
        segments: list[Segment],
        prompt: str | None,
        words: bool = False,
    ) -> list[asyncio.Task]:
        """One task per segment, in order, each giving (text, its words in file seconds or
        None). At most `limits.segments_in_flight` of one file are with the model at a time,
        in the model's long-file lane when there are several (its words lane when `words`),
        so a long file neither fills the batches of short requests nor waits behind them.
        The prompt guides every segment."""
        gate = asyncio.Semaphore(self.limits.segments_in_flight)
        lane = handle.transcribe_long if len(segments) > 1 else handle.transcribe

        async def one(segment: Segment) -> tuple[str, list[Word] | None]:
            async with gate:
                piece = audio[segment.start : segment.end]
                if not words:
                    return (await lane.remote(piece, prompt)).strip(), None
                timed = await handle.transcribe_words.remote(piece, prompt)
                timed = shifted(timed, segment.start / SAMPLE_RATE)
                return words_text(timed), timed

        return [asyncio.create_task(one(s)) for s in segments]

    async def _sse(self, texts: list[asyncio.Task]):
        """OpenAI's transcription stream: one delta per segment, in order, as it is done."""
        done = []
        try:
            for task in texts:
                text, _ = await task
                if text:
                    delta = text if not done else " " + text
                    done.append(text)
                    payload = {"type": "transcript.text.delta", "delta": delta}
                    yield f"data: {json.dumps(payload)}\n\n"
        finally:
            for task in texts:  # a client that went away stops the rest
                task.cancel()
        yield f"data: {json.dumps({'type': 'transcript.text.done', 'text': ' '.join(done)})}\n\n"

    @app.websocket("/v1/stream")
    async def stream(self, ws: WebSocket) -> None:
        await ws.accept()
        self._streams += 1
        self.metrics.active_streams.record(self._streams)
        status = "ok"
        try:
            await self._serve_stream(ws)
        except ProtocolError as err:
            status = str(err.code)
            await self._close(ws, err.code, err.reason, send_error=True)
        except WebSocketDisconnect:
            status = "disconnect"
        except Exception:  # a server bug must end this stream only, never the replica
            logger.exception("stream failed")
            status = str(CLOSE_INTERNAL)
            await self._close(ws, CLOSE_INTERNAL, "internal error", send_error=True)
        finally:
            self._streams -= 1
            self.metrics.active_streams.record(self._streams)
            failed = status not in ("ok", "disconnect")
            self._count("stream", status, status if failed else None)

    async def _close(self, ws: WebSocket, code: int, reason: str, send_error: bool) -> None:
        if ws.client_state != WebSocketState.CONNECTED:
            return
        try:
            if send_error:
                await asyncio.wait_for(
                    ws.send_json(event("error", code=code, message=reason)),
                    self.limits.send_timeout_s,
                )
            await ws.close(code, reason)
        except (WebSocketDisconnect, RuntimeError, asyncio.TimeoutError):
            pass  # the client is gone already

    async def _receive(self, ws: WebSocket, flow: FlowWindow | None = None) -> dict:
        """The next message. A stream that sends nothing for idle_timeout_s is closed; with
        `flow`, a client waiting for credit is not idle while its audio is queued, and its
        idle time counts from the later of its last message and the model's last progress."""
        idle = self.limits.idle_timeout_s
        since = time.monotonic()
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), since + idle - time.monotonic())
                break
            except asyncio.TimeoutError as err:
                later = flow.idle_since(since) if flow is not None else since
                if later is not None and later + idle <= time.monotonic():
                    raise ProtocolError(CLOSE_POLICY, f"idle for {idle:g} s") from err
                since = time.monotonic() if later is None else later
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1005))
        return message

    async def _send(self, ws: WebSocket, payload: dict) -> None:
        try:
            await asyncio.wait_for(ws.send_json(payload), self.limits.send_timeout_s)
        except asyncio.TimeoutError as err:
            raise ProtocolError(CLOSE_POLICY, "client is not reading events") from err

    async def _serve_stream(self, ws: WebSocket) -> None:
        if not self._authorized(ws.headers, ws.query_params):
            raise ProtocolError(CLOSE_POLICY, "missing or wrong API key")
        if self._streams > self.limits.max_streams:
            raise ProtocolError(
                CLOSE_BUSY, f"server is at its limit of {self.limits.max_streams} streams"
            )
        config = parse_config(await self._receive(ws))
        try:
            handle, info = await self._model(config.model)
        except ApiError as err:
            raise ProtocolError(CLOSE_INVALID, err.message) from err
        if config.language not in ("", info.language):
            raise ProtocolError(
                CLOSE_INVALID, f"model {info.id!r} transcribes {info.language!r} only"
            )
        if config.words and not info.word_times:
            raise ProtocolError(CLOSE_INVALID, f"model {info.id!r} gives no word times")
        session = OnlineSession(self._engine(handle, info, words=config.words), self.options.online)
        decoder = PcmDecoder(config.encoding, config.sample_rate)
        flow = FlowWindow(int(self.limits.window_s * SAMPLE_RATE))
        ready = event("ready", model=info.id, streaming=info.streaming)
        await self._send(ws, {**ready, "window_s": self.limits.window_s})
        arrived = await self._pump(ws, session, decoder, flow, info.id)
        events = await session.accept(decoder.flush()) + await session.finish()
        await self._send_events(ws, events, info.id, arrived)
        seconds = round(session.samples / SAMPLE_RATE, 3)
        self.metrics.audio_seconds.record(seconds, info.id, "stream")
        await self._send(ws, event("done", audio_seconds=seconds))
        await ws.close(CLOSE_NORMAL, "done")

    async def _pump(self, ws, session, decoder, flow: FlowWindow, model: str) -> float:
        """Read frames and decode them concurrently until the end message (returns when it
        arrived). A client error (past its window, a bad frame) ends the stream as soon as
        the reader sees it, not once the model has worked through the audio before it."""
        frames: asyncio.Queue = asyncio.Queue()
        reader = asyncio.create_task(self._read_frames(ws, decoder, flow, frames))
        worker = asyncio.create_task(self._process_frames(ws, session, flow, frames, model))
        try:
            done, _ = await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_EXCEPTION)
            if reader in done and reader.exception() is not None:
                raise reader.exception()
            return await worker
        finally:
            reader.cancel()
            worker.cancel()

    async def _process_frames(self, ws, session, flow: FlowWindow, frames, model: str) -> float:
        """Decode queued frames until the end message; returns its arrival time."""
        while True:
            pcm, arrived = await frames.get()
            if pcm is None:  # the end message
                return arrived
            await self._send_events(ws, await session.accept(pcm), model, arrived)
            if flow.process(len(pcm)):
                await self._send(ws, event("ack", audio_seconds=flow.processed / SAMPLE_RATE))

    async def _read_frames(self, ws, decoder: PcmDecoder, flow: FlowWindow, frames) -> None:
        """Take frames off the socket as they arrive, while earlier ones are decoded: a client
        past its flow-control window is caught on that frame. Puts (16 kHz samples, arrival
        time), then (None, arrival time) at `end`; raises what ends the stream early."""
        max_samples = self.limits.max_stream_seconds * SAMPLE_RATE
        while True:
            message = await self._receive(ws, flow)
            arrived = time.perf_counter()
            if message.get("bytes") is not None:
                if len(message["bytes"]) > self.limits.max_frame_bytes:
                    raise ProtocolError(
                        CLOSE_TOO_BIG, f"frame over {self.limits.max_frame_bytes} bytes"
                    )
                pcm = decoder.decode(message["bytes"])
                flow.receive(len(pcm))
                if flow.received > max_samples:
                    raise ProtocolError(
                        CLOSE_POLICY, f"stream over {self.limits.max_stream_seconds:g} s"
                    )
                frames.put_nowait((pcm, arrived))
            elif message.get("text") is not None:
                parse_control(message["text"])  # "end", or a ProtocolError
                frames.put_nowait((None, arrived))
                return
            else:
                raise ProtocolError(CLOSE_UNSUPPORTED, "empty message")

    @app.websocket("/v1/realtime")
    async def realtime_transcription(self, ws: WebSocket) -> None:
        """OpenAI's Realtime API, transcription sessions (serve/realtime.py): held against
        the same stream cap as /v1/stream and counted with it (route "realtime")."""
        await ws.accept()
        self._streams += 1
        self.metrics.active_streams.record(self._streams)
        status = str(CLOSE_INTERNAL)  # unless the session ends otherwise
        try:
            backend = realtime.Backend(
                self._model, self._engine, self.options.online, self.limits, self.metrics
            )
            allowed = self._authorized(ws.headers, ws.query_params)
            status = await realtime.serve(ws, backend, allowed, self._streams)
        finally:
            self._streams -= 1
            self.metrics.active_streams.record(self._streams)
            failed = status not in ("ok", "disconnect")
            self._count("realtime", status, status if failed else None)

    async def _send_events(self, ws, events, model: str, arrived: float) -> None:
        """Send events caused by the message that arrived at `arrived` (perf_counter)."""
        for e in events:
            if e.type == "final":
                self.metrics.final_latency.record(time.perf_counter() - arrived, model)
            await self._send(ws, e.to_dict())

    @serve.batch
    async def _step_streams(
        self, model_ids: list[str], chunks: list[np.ndarray], states: list[dict | None]
    ) -> list[tuple]:
        """One chunk of each of many streams, one forward pass per model."""
        return await asyncio.to_thread(self._run_steps, model_ids, chunks, states)

    def _run_steps(self, model_ids, chunks, states) -> list[tuple]:
        results: list = [None] * len(chunks)
        for mid in set(model_ids):
            rows = [i for i, m in enumerate(model_ids) if m == mid]
            out = self.local[mid].step([chunks[i] for i in rows], [states[i] for i in rows])
            for i, result in zip(rows, out, strict=True):
                results[i] = result
        return results

    def _engine(
        self,
        handle: DeploymentHandle,
        info: ModelInfo,
        prompt: str | None = None,
        words: bool = False,
    ):
        """A fresh engine for one stream; `words`: its finals carry timed words."""
        served = self.local.get(info.id)
        if served is not None and served.recognizer is not None:
            run = partial(self._in_turn, info.id)
            return RecognizerEngine(served.recognizer(words=words), run, words)
        if served is not None:

            async def step(features, state):
                return await self._step_streams(info.id, features, state)

            queue = served.chunk_queue()
            return CtcEngine(step, served.decoder, queue, served.pad_samples, words)

        async def transcribe(audio):
            return await handle.transcribe.remote(audio, prompt)

        async def transcribe_words(audio):
            return await handle.transcribe_words.remote(audio, prompt)

        every = self.options.online.decode_every_s
        return LocalAgreementEngine(transcribe, every, transcribe_words if words else None)

    async def _in_turn(self, model: str, call):
        async with self._turns[model]:
            return await asyncio.to_thread(call)


def _deployment_options(options: DeploymentOptions) -> dict:
    scaling = (
        {
            "autoscaling_config": {
                "min_replicas": options.min_replicas,
                "max_replicas": options.max_replicas,
                "target_ongoing_requests": options.target_ongoing_requests,
            }
        }
        if options.autoscale
        else {"num_replicas": options.replicas}
    )
    return {
        **scaling,
        "ray_actor_options": {"num_cpus": options.num_cpus, "num_gpus": options.num_gpus},
        # several full batches may wait in line; the default (5) would cap a batch at 5
        "max_ongoing_requests": 4 * options.max_batch_size,
    }


def build_app(options: ServeOptions):
    """The bound application: Gateway + one ModelDeployment per model in options.models."""
    from audiodistill.online.served_model import streams_natively

    ids = [model_id(spec) for spec in options.models]
    if len(set(ids)) != len(ids) or not ids:
        raise ValueError(f"models must be a non-empty list with distinct names, got {ids}")
    models = {
        mid: ModelDeployment.options(
            name=f"model-{mid}", **_deployment_options(options.deployment)
        ).bind(spec, options.deployment)
        for mid, spec in zip(ids, options.models, strict=True)
    }
    gateway = Gateway.options(
        # streams are long-lived requests: each holds one slot for its whole duration
        max_ongoing_requests=options.limits.max_streams + options.limits.max_http_requests,
        num_replicas=options.gateway_replicas,
        ray_actor_options={"num_cpus": options.gateway_cpus},
    )
    streaming = {
        mid: spec for mid, spec in zip(ids, options.models, strict=True) if streams_natively(spec)
    }
    return gateway.bind(models, streaming, options)


def check_cpus(options: ServeOptions, cpus: float) -> None:
    """Refuse a plan whose replicas reserve more CPUs than `cpus`: Serve would wait for them
    forever. Autoscaling replicas are counted at their minimum."""
    d = options.deployment
    replicas = d.min_replicas if d.autoscale else d.replicas
    wanted = len(options.models) * replicas * d.num_cpus
    wanted += options.gateway_replicas * options.gateway_cpus
    if wanted > cpus + 1e-9:
        raise ValueError(
            f"{len(options.models)} models and the gateway reserve {wanted:g} CPUs, and this "
            f"Ray has {cpus:g}: lower deployment.num_cpus or gateway_cpus (a scheduling "
            "hint: deployment.threads is what limits compute), or serve fewer models"
        )


def start(options: ServeOptions) -> str:
    """Start (or join, with RAY_ADDRESS) Ray, deploy the app, return its base URL."""
    import ray

    stages = Stages("serve")
    if not ray.is_initialized():
        stages("starting Ray" if not os.environ.get("RAY_ADDRESS") else "joining the cluster")
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    if not os.environ.get("RAY_ADDRESS"):  # a local Ray cannot grow: fail now, not hang
        check_cpus(options, ray.cluster_resources().get("CPU", 0.0))
    serve.start(http_options={"host": options.host, "port": options.port})
    stages(f"deploying {', '.join(options.models)} (each replica loads its weights)")
    serve.run(build_app(options), name=options.name, route_prefix="/")
    stages(f"ready on {options.host}:{options.port}")
    return f"http://{options.host}:{options.port}"


def app_builder(args: dict):
    """The entry point `serve run` / `serve deploy` call with a config file's `args`, which
    are ServeOptions fields (configs/serve/ray_serve.yaml)."""
    from audiodistill.config import from_dict

    return build_app(from_dict(ServeOptions, dict(args)))
