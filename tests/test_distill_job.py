"""The Ray Train distillation job end to end: checkpoints, export, resume, a killed worker."""

import json
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

import audiodistill
from audiodistill.config import load_config
from audiodistill.students.fake_student import make_tone_labels
from audiodistill.training.distill_options import DistillOptions
from pipelines.distill import run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory):
    return make_tone_labels(tmp_path_factory.mktemp("tones"), n_train=64, n_dev=8)


@pytest.fixture(scope="module")
def ray_session():
    import ray

    # the controller polls workers this often (default 2 s): each report waits for a poll,
    # and a dead worker is noticed at the next one
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.2"
    ray.init(num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()
    del os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]


def _options(labels_dir, out, *overrides):
    return load_config(
        DistillOptions,
        overrides=[
            "student=fake",
            f"out={out}",
            f"data.labels={labels_dir}",
            "train.workers=2",
            "train.batch_size=8",
            "train.lr=0.01",
            "train.warmup_steps=5",
            "train.eval_every=10",
            "train.checkpoint_every=5",
            "train.log_every=5",
            *overrides,
        ],
    )


def _starts(out) -> list[int]:
    """The step each training attempt (first run, restart, rerun) began from."""
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [x["step"] for x in lines if x.get("event") == "start"]


def test_trains_checkpoints_exports_and_resumes(labels_dir, tmp_path, ray_session):
    out = tmp_path / "run"
    summary = run(_options(labels_dir, out, "train.max_steps=20"))
    assert summary["steps"] == 20 and summary["train_utterances"] == 64
    checkpoints = sorted(p.name for p in (out / "ray" / "train").glob("checkpoint_0*"))
    assert "checkpoint_00000020" in checkpoints and len(checkpoints) <= 2
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {
        p.name for p in (out / "model").iterdir()
    }
    assert (out / "config.yaml").exists() and (out / "summary.json").exists()
    model = audiodistill.load_model(out / "model")
    assert all(isinstance(t, str) for t in model.transcribe([np.zeros(8000, np.float32)]))

    summary = run(_options(labels_dir, out, "train.max_steps=30"))
    assert _starts(out) == [0, 20]
    assert summary["steps"] == 30
    steps = [json.loads(x).get("step") for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 30 and steps == sorted(steps)


@pytest.mark.slow  # ~25 s on 2 busy cores, nearly all of it Ray Train's start-up
def test_streaming_student_runs_through_the_job(labels_dir, tmp_path, ray_session):
    out = tmp_path / "run"
    options = _options(
        labels_dir, out, "student=streaming", "train.max_steps=2", "train.eval_every=2"
    )
    summary = run(options)
    assert summary["steps"] == 2 and 0.0 <= summary["best_dev_wer"]
    model = audiodistill.load_model(out / "model")
    assert model.tokenizer.vocab_size == 29 and model.model.config.chunk_ms == 320
    assert model.decoder.lm is not None  # fitted on the training rows' text at export
    assert isinstance(model.transcribe([np.zeros(8000, np.float32)])[0], str)


@pytest.mark.slow  # ~40 s on 2 busy cores
def test_killed_worker_resumes_from_the_last_checkpoint_and_finishes(
    labels_dir, tmp_path, ray_session, alive_actors
):
    """A training worker killed mid-run, just after a checkpoint: the worker group restarts
    from the newest checkpoint (not from 0, not from an older one), counts every step once
    and stops at the same final step."""
    out = tmp_path / "run"
    options = _options(
        labels_dir, out, "train.max_steps=40", "fake.seconds_per_step=0.2", "train.max_failures=1"
    )
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(run(options)))
    job.start()
    _wait_for_checkpoint(out, 15)  # the next one is 5 steps (a second) away
    workers = alive_actors("RayTrainWorker")
    assert len(workers) == 2, "the training workers were not found alive"
    os.kill(workers[-1]["pid"], signal.SIGKILL)
    last = max(_checkpointed_steps(out))
    job.join(timeout=150)
    assert not job.is_alive(), "the run did not finish after losing a worker"
    assert result["steps"] == 40
    first, restart = _starts(out)  # two starts: the kill did stop the run mid-way
    # once a worker is dead the other blocks at its next gradient all-reduce, so at most a
    # checkpoint already being reported can be registered after the kill
    assert first == 0 and restart in (last, last + 5)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == list(range(5, 41, 5))


def test_rerun_after_a_stop_at_a_checkpoint_without_dev_score_resumes(
    labels_dir, tmp_path, ray_session, alive_actors
):
    """Checkpoints between evaluations carry no dev score; Ray's checkpoint list on disk must
    still rank them when a rerun resumes (it once held them as null and the rerun failed)."""
    out = tmp_path / "run"
    options = _options(
        labels_dir, out, "train.max_steps=30", "fake.seconds_per_step=0.3", "train.max_failures=0"
    )
    failed: list[Exception] = []

    def first_run() -> None:
        try:
            run(options)
        except Exception as error:  # the killed workers end it, as a stop would
            failed.append(error)

    job = threading.Thread(target=first_run)
    job.start()
    _wait_for_checkpoint(out, 15)
    for worker in alive_actors("RayTrainWorker"):  # the run stops at step 15's checkpoint
        os.kill(worker["pid"], signal.SIGKILL)
    job.join(timeout=60)
    assert not job.is_alive() and failed, "the first run did not stop"
    # the same run resumed: only training options may change (pipelines.distill refuses others)
    summary = run(_options(labels_dir, out, "train.max_steps=30", "fake.seconds_per_step=0.3"))
    assert summary["steps"] == 30
    first, rerun = _starts(out)
    assert first == 0 and 15 <= rerun < 20 and summary["best_step"] in (20, 30)


def _checkpointed_steps(out) -> set[int]:
    """Steps of the checkpoints Ray Train has registered (its snapshot of the list)."""
    snapshot = out / "ray" / "train" / "checkpoint_manager_snapshot.json"
    text = snapshot.read_text() if snapshot.exists() else ""
    return {int(step) for step in re.findall(r"checkpoint_(\d{8})", text)}


def _wait_for_checkpoint(out, step: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while step not in _checkpointed_steps(out):
        assert time.time() < deadline, f"no checkpoint at step {step} within {timeout_s} s"
        time.sleep(0.05)
