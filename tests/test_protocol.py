"""Wire-level pieces of the service without a server: config parsing, PCM decoding, formats."""

import json

import numpy as np
import pytest

from serve import formats
from serve.protocol import PcmDecoder, ProtocolError, parse_config, parse_control


def test_config_defaults_and_errors_name_the_field():
    config = parse_config({"text": json.dumps({"type": "config"})})
    assert (config.sample_rate, config.encoding, config.model) == (16000, "pcm_s16le", None)
    cases = {
        '{"type": "config", "sample_rate": 4000}': "config.sample_rate",
        '{"type": "config", "encoding": "opus"}': "config.encoding",
        '{"type": "config", "speed": 2}': "config.speed",
        '{"type": "start"}': "config.type",
        "[1, 2": "not JSON",
    }
    for text, words in cases.items():
        with pytest.raises(ProtocolError, match=words) as err:
            parse_config({"text": text})
        assert err.value.code == 1007
    with pytest.raises(ProtocolError) as err:
        parse_config({"bytes": b"\x00\x00"})
    assert err.value.code == 1003


def test_close_reasons_fit_in_a_close_frame():
    assert len(ProtocolError(1007, "é" * 200).reason.encode()) <= 123


def test_control_messages():
    assert parse_control('{"type": "end"}') == "end"
    for text in ('{"type": "stop"}', "end", "[]"):
        with pytest.raises(ProtocolError):
            parse_control(text)


def test_pcm_frames_may_split_samples():
    samples = (np.sin(np.arange(1000) / 7) * 20000).astype("<i2")
    data = samples.tobytes()
    decoder = PcmDecoder("pcm_s16le", 16000)
    pieces = [decoder.decode(data[i : i + 333]) for i in range(0, len(data), 333)]
    np.testing.assert_allclose(np.concatenate(pieces), samples / 32768, atol=1e-6)


def test_resampling_is_continuous_across_frames():
    rate = 44100
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype("<f4")
    decoder = PcmDecoder("f32le", rate)
    data = tone.tobytes()
    out = [decoder.decode(data[i : i + 4000]) for i in range(0, len(data), 4000)]
    audio = np.concatenate([*out, decoder.flush()])
    assert abs(len(audio) - 16000) <= 1
    reference = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(audio)) / 16000)
    # away from the edges the piecewise-resampled stream is the tone itself
    np.testing.assert_allclose(audio[500:-500], reference[500:-500], atol=2e-3)


def test_nan_audio_is_refused():
    with pytest.raises(ProtocolError, match="NaN"):
        PcmDecoder("f32le", 16000).decode(np.array([0.1, np.nan], "<f4").tobytes())


def test_subtitle_formats():
    segments = [formats.TimedText(0.5, 2.25, "hello there"), formats.TimedText(3661.0, 3662.5, "x")]
    assert formats.srt(segments) == (
        "1\n00:00:00,500 --> 00:00:02,250\nhello there\n\n2\n01:01:01,000 --> 01:01:02,500\nx\n"
    )
    assert formats.vtt(segments).startswith("WEBVTT\n\n00:00:00.500 --> 00:00:02.250\nhello")
    verbose = formats.verbose_json(segments, 3663.0, "en")
    assert verbose["text"] == "hello there x" and verbose["segments"][1]["id"] == 1


def test_flow_window_acks_and_catches_a_client_without_credit():
    from serve.protocol import FlowWindow

    flow = FlowWindow(window=1000)
    flow.receive(600)
    flow.receive(600)  # 600 < 1000 past the last ack when sent: allowed
    with pytest.raises(ProtocolError, match="flow-control window") as err:
        flow.receive(100)  # 1200 unprocessed: this frame had no credit
    assert err.value.code == 1008
    assert not flow.process(200)  # under a quarter window since the last ack
    assert flow.process(100) and flow.acked == 300
    flow.process(900)  # the queue drained: an ack went out, so the client may send again
    assert flow.acked == 1200
    flow.receive(999)


def test_a_silent_client_waiting_for_credit_is_not_idle(monkeypatch):
    from serve import protocol
    from serve.protocol import FlowWindow

    clock = [100.0]
    monkeypatch.setattr(protocol.time, "monotonic", lambda: clock[0])
    flow = FlowWindow(window=1000)
    flow.receive(1000)
    clock[0] += 60
    assert flow.idle_since(100.0) is None  # its audio is still queued
    flow.process(1000)  # at 160: the ack went out then
    clock[0] += 10
    assert flow.idle_since(100.0) == 160.0  # idle from the ack, not from its last frame
    assert flow.idle_since(165.0) == 165.0  # a message after the ack: idle from it
