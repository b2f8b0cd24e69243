"""`ray job submit` of the pseudo-label job to a local head node, as a user submits it to a
cluster (README, "On a Ray cluster"). Ray 2.60 starts heads with token authentication:
the client needs RAY_AUTH_MODE=token to send the token `ray start` wrote."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from audiodistill.data.audio import SAMPLE_RATE, save_wav
from audiodistill.data.label_store import read_labels
from audiodistill.data.manifest import Utterance, write_manifest
from audiodistill.testing.loopback import free_port

# a head node starts and its job agent comes up: 2-7 minutes on 2 busy cores, so not in CI
pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
def head():
    """A head node of its own (own ports and temp dir), stopped by signalling only its
    `ray start --block` process group: `ray stop` would stop every Ray on the machine."""
    bin_dir = Path(sys.executable).parent
    dashboard = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # sockets need a short path
    command = [
        str(bin_dir / "ray"), "start", "--head", "--block", "--num-cpus", "2",
        "--port", str(free_port()), "--dashboard-port", str(dashboard),
        "--include-dashboard", "true", "--temp-dir", temp_dir,
        "--disable-usage-stats",
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            if requests.get(f"{url}/api/version", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(1)
    yield url, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a head busy starting may not stop on SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shutil.rmtree(temp_dir, ignore_errors=True)


def _manifest(root: Path) -> Path:
    rng = np.random.default_rng(0)
    utts = []
    for i in range(6):
        save_wav(root / f"u{i}.wav", 0.1 * rng.standard_normal(SAMPLE_RATE // 2).astype("f4"))
        utts.append(Utterance(f"u{i}", str(root / f"u{i}.wav")))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def _submit(url: str, env: dict, args: list[str], auth_mode: str | None):
    env = {**env, **({"RAY_AUTH_MODE": auth_mode} if auth_mode else {})}
    env.pop("RAY_ADDRESS", None)
    submit = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", url, "--"]
    for _ in range(20):  # the head's job agent comes up some seconds after its dashboard
        done = subprocess.run(
            [*submit, *args], env=env, capture_output=True, text=True, timeout=300
        )
        if "No available agent" not in done.stderr:
            return done
        time.sleep(3)
    return done


def test_a_submitted_pseudo_label_job_labels_the_corpus(head, tmp_path):
    url, env = head
    manifest, out = _manifest(tmp_path), tmp_path / "labels"
    job = [
        "audiodistill", "pseudo-label", f"manifest={manifest}", f"out={out}",
        "teacher.backend=fake", "workers=1", "shard_size=3",
    ]  # fmt: skip
    refused = _submit(url, env, job, auth_mode="disabled")
    assert refused.returncode != 0 and "authentication token" in refused.stderr.lower()
    done = _submit(url, env, job, auth_mode="token")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "succeeded" in done.stdout + done.stderr
    labels = read_labels(out)
    assert sorted(labels["id"]) == [f"u{i}" for i in range(6)] and labels["id"].is_unique
    assert json.loads((out / "summary.json").read_text())["items"] == 6
