"""The distillation loop without Ray: data prep and its errors, batching, steps, dev WER, state."""

import dataclasses
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import audiodistill
from audiodistill.config import ConfigError, load_config, save_config
from audiodistill.data.label_filters import FilterOptions
from audiodistill.data.label_store import SCHEMA, read_labels, shard_path
from audiodistill.errors import DataError
from audiodistill.students.fake_student import FakeStudentTask, make_tone_labels
from audiodistill.students.registry import build_task
from audiodistill.training.distill_options import DataOptions, DistillOptions, TrainOptions
from audiodistill.training.label_rows import (
    load_training_rows,
    stream_training_rows,
    training_row,
    training_runs,
    with_audio,
)
from audiodistill.training.loop import (
    TrainState,
    batch_stream,
    bucket_batches,
    evaluate,
    export_checkpoint,
    load_checkpoint,
    lr_factor,
    make_optimizer,
    save_checkpoint,
    train_step,
)
from pipelines.distill import prepare


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory):
    return make_tone_labels(tmp_path_factory.mktemp("tones"), n_train=96, n_dev=16)


@pytest.fixture(scope="module")
def records(labels_dir):
    """(train, dev) rows as a worker sees them: audio still a path."""
    train, dev = load_training_rows(DataOptions(labels=str(labels_dir)))
    return tuple([training_row(r) for r in df.to_dict(orient="records")] for df in (train, dev))


@pytest.fixture(scope="module")
def rows(records):
    return tuple(with_audio(r) for r in records)


def _rewrite(labels_dir, tmp_path, **changes):
    """A copy of the label run with some columns replaced on every row."""
    frame = read_labels(labels_dir).assign(**changes)
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    shard_path(tmp_path / "run", 0).parent.mkdir(parents=True)
    pq.write_table(table, shard_path(tmp_path / "run", 0))
    return tmp_path / "run"


def _durations(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"id": str(i), "duration": float(d)} for i, d in enumerate(rng.uniform(1, 20, n))]


# --- batching ------------------------------------------------------------------------------


def test_buckets_hold_every_row_once_within_the_padded_budget():
    rows = _durations(200)
    batches = bucket_batches(rows, batch_seconds=60.0, rng=np.random.default_rng(1))
    assert sorted(r["id"] for b in batches for r in b) == sorted(r["id"] for r in rows)
    for batch in batches:
        longest = max(r["duration"] for r in batch)
        assert len(batch) == 1 or len(batch) * longest <= 60.0


def test_buckets_group_similar_durations_in_shuffled_order():
    rows = _durations(200)
    batches = bucket_batches(rows, batch_seconds=60.0, rng=np.random.default_rng(1))
    spread = np.mean([np.ptp([r["duration"] for r in b]) for b in batches if len(b) > 1])
    assert spread < 0.2 * np.ptp([r["duration"] for r in rows])
    means = [np.mean([r["duration"] for r in b]) for b in batches]
    assert means != sorted(means)
    again = bucket_batches(rows, batch_seconds=60.0, rng=np.random.default_rng(2))
    assert [r["id"] for r in again[0]] != [r["id"] for r in batches[0]]


def test_fixed_batch_size_and_endless_stream(records):
    train, _ = records
    batches = bucket_batches(train, 1.0, np.random.default_rng(0), batch_size=8)
    assert [len(b) for b in batches] == [8] * 12
    stream = batch_stream(lambda: train, 1.0, np.random.default_rng(0), batch_size=16)
    batches = [next(stream) for _ in range(15)]  # 6 batches an epoch: 2.5 epochs
    assert all(len(b) == 16 and isinstance(b[0]["audio"], np.ndarray) for b in batches)
    with pytest.raises(ValueError, match="no training rows"):
        next(batch_stream(lambda: [], 1.0, np.random.default_rng(0), None))


def test_a_streamed_epoch_is_read_a_window_at_a_time(records):
    """A worker holds one window of rows, not its share of the corpus: the first batch comes
    after `window` rows were read, and every row still trains once an epoch."""
    train, _ = records
    pulled = []

    def epoch():
        for row in train:
            pulled.append(row["id"])
            yield row

    stream = batch_stream(epoch, 1.0, np.random.default_rng(0), batch_size=4, window=16)
    first = next(stream)
    assert len(pulled) == 16 and {r["id"] for r in first} <= set(pulled)
    epoch = [first, *(next(stream) for _ in range(len(train) // 4 - 1))]
    assert sorted(r["id"] for b in epoch for r in b) == sorted(r["id"] for r in train)


# --- data prep and its errors ---------------------------------------------------------------


def test_training_rows_are_filtered_and_dev_has_references(labels_dir):
    train, dev = load_training_rows(DataOptions(labels=str(labels_dir)))
    assert len(train) == 96 and len(dev) == 16
    assert (dev["reference"] == dev["text"]).all()
    assert train.attrs["dropped"]["wer"] == 0


def test_training_rows_are_plain_python_even_without_soft_targets():
    record = {
        "id": "a", "audio": "/x.wav", "duration": 1.5, "text": "one", "reference": None,
        "token_ids": np.array([1], np.int32), "topk_ids": None, "topk_logprobs": None,
    }  # fmt: skip
    row = training_row(record)
    assert row == {
        "id": "a", "audio": "/x.wav", "duration": 1.5, "text": "one", "reference": "",
        "token_ids": [1], "topk_ids": [], "topk_logprobs": [],
    }  # fmt: skip
    assert type(row["token_ids"][0]) is int


def test_dev_reference_falls_back_to_the_pseudo_label(labels_dir, tmp_path):
    run = _rewrite(labels_dir, tmp_path, reference=None, wer=None)
    _, dev = load_training_rows(DataOptions(labels=str(run)))
    assert len(dev) == 16 and (dev["reference"] == dev["text"]).all()


def test_extra_runs_train_in_full_and_ids_must_not_collide(labels_dir, tmp_path):
    extra = read_labels(labels_dir).assign(id=lambda f: "real-" + f["id"], split=None)
    (tmp_path / "a").mkdir()
    other = _rewrite(labels_dir, tmp_path / "a", id=extra["id"].to_numpy(), split=None)
    train, dev = load_training_rows(DataOptions(labels=str(labels_dir), extra_labels=(str(other),)))
    assert len(train) == 96 + 112 and len(dev) == 16  # every extra row, dev only from `labels`
    assert train["id"].is_unique
    with pytest.raises(DataError, match="more than one pseudo-label run"):
        load_training_rows(DataOptions(labels=str(labels_dir), extra_labels=(str(labels_dir),)))


def test_extra_runs_hold_their_dev_and_test_rows_out_and_repeat(labels_dir, tmp_path):
    """Recordings listed with held-out splits: only their train rows are trained on, as
    often as `repeat` says (the labels' own rows first)."""
    extra = read_labels(labels_dir).assign(id=lambda f: "real-" + f["id"])
    (tmp_path / "a").mkdir()
    other = _rewrite(labels_dir, tmp_path / "a", id=extra["id"].to_numpy())
    options = DataOptions(labels=str(labels_dir), extra_labels=(str(other),))
    train, _ = load_training_rows(options)
    assert len(train) == 96 + 96 and not train["id"].str.startswith("real-dev").any()
    held_out = set(extra.loc[extra["split"] != "train", "id"])
    assert held_out and not held_out & set(train["id"])
    train, _ = load_training_rows(replace(options, repeat=(1, 3)))
    assert len(train) == 96 + 3 * 96 and train["id"].str.startswith("real-").sum() == 3 * 96
    with pytest.raises(DataError, match="data.repeat"):
        load_training_rows(replace(options, repeat=(1, 1, 2)))


def test_workers_stream_exactly_the_driver_rows_between_them(labels_dir, tmp_path):
    """Each worker streams its share of the shards (repeats and extra runs included): the
    shares are disjoint, together they are the driver's rows, and a light read (no token or
    top-k arrays on the driver) selects the same rows as a full one."""
    extra = read_labels(labels_dir).assign(id=lambda f: "real-" + f["id"])
    (tmp_path / "a").mkdir()
    other = _rewrite(labels_dir, tmp_path / "a", id=extra["id"].to_numpy())
    options = DataOptions(labels=str(labels_dir), extra_labels=(str(other),), repeat=(1, 2))
    light, _ = load_training_rows(options, light=True)
    full, _ = load_training_rows(options)
    assert "topk_ids" not in light and sorted(light["id"]) == sorted(full["id"])
    assert "topk_ids" in light.attrs["sample"]  # what the task's check reads
    sources = training_runs(options)
    shares = [
        list(stream_training_rows(sources, options, rank, 3, np.random.default_rng(rank)))
        for rank in range(3)
    ]
    assert all(shares) and sorted(r["id"] for s in shares for r in s) == sorted(full["id"])
    owners = [{r["id"] for r in share} for share in shares]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    row = shares[0][0]
    assert isinstance(row["audio"], str) and row["topk_ids"] and type(row["token_ids"][0]) is int


def test_holdout_sentences_are_never_trained_on(labels_dir, tmp_path):
    import json

    train, _ = load_training_rows(DataOptions(labels=str(labels_dir)))
    leaked = train["reference"].unique()[:3].tolist()
    manifest = tmp_path / "other.jsonl"
    rows = [{"id": f"t{i}", "audio": "x.wav", "text": t.upper() + "!", "split": "test"}
            for i, t in enumerate(leaked[:2])]  # fmt: skip
    rows.append({"id": "t9", "audio": "x.wav", "text": leaked[2], "split": "train"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, _ = load_training_rows(DataOptions(labels=str(labels_dir), holdout=(str(manifest),)))
    n_leaked = int(train["reference"].isin(leaked[:2]).sum())
    assert len(kept) == len(train) - n_leaked > 0
    assert kept.attrs["dropped"]["held_out_sentence"] == n_leaked
    assert not set(leaked[:2]) & set(kept["reference"]) and leaked[2] in set(kept["reference"])
    with pytest.raises(DataError, match="data.holdout: .*no such file"):
        load_training_rows(DataOptions(labels=str(labels_dir), holdout=(str(tmp_path / "x"),)))


def test_missing_run_dir_and_shards(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_training_rows(DataOptions(labels=str(tmp_path / "nope")))
    with pytest.raises(DataError, match="no pseudo-label shards"):
        load_training_rows(DataOptions(labels=str(tmp_path)))


def test_missing_columns_are_named(labels_dir, tmp_path):
    frame = read_labels(labels_dir).drop(columns=["topk_ids", "wer"])
    shard_path(tmp_path, 0).parent.mkdir()
    frame.to_parquet(shard_path(tmp_path, 0))
    with pytest.raises(DataError, match="lack column\\(s\\) topk_ids, wer"):
        load_training_rows(DataOptions(labels=str(tmp_path)))


def test_empty_after_filtering_says_what_each_filter_dropped(labels_dir, tmp_path):
    run = _rewrite(labels_dir, tmp_path, wer=0.5)
    with pytest.raises(DataError, match=r"all 96 rows .* wer 96, .* too_long 0"):
        load_training_rows(DataOptions(labels=str(run)))
    with pytest.raises(DataError, match="no rows in split 'test'"):
        load_training_rows(DataOptions(labels=str(labels_dir), train_split="test"))
    loose = DataOptions(labels=str(run), filters=FilterOptions(max_wer=1.0), max_duration=0.1)
    with pytest.raises(DataError, match="wer 0, .* too_long 96"):
        load_training_rows(loose)


def test_prepare_checks_the_student_and_the_dev_split(labels_dir, tmp_path):
    wrong = _rewrite(labels_dir, tmp_path, token_ids=pd.Series([[50257]] * 112))
    options = DistillOptions(student="fake", data=DataOptions(labels=str(wrong)))
    with pytest.raises(DataError, match="another tokenizer"):
        prepare(options, build_task(options))
    no_dev = dataclasses.replace(
        options, data=DataOptions(labels=str(labels_dir), dev_split="test")
    )
    with pytest.raises(DataError, match="train.eval_every=0"):
        prepare(no_dev, build_task(no_dev))


def test_config_rejects_unknown_keys_and_students():
    with pytest.raises(ConfigError, match="unknown key train.bogus"):
        load_config(DistillOptions, None, ["train.bogus=1"])
    with pytest.raises(ConfigError, match="data.filters.max_wer must be float"):
        load_config(DistillOptions, None, ["data.filters.max_wer=high"])
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        build_task(DistillOptions(student="nope"))


# --- steps, evaluation, state ------------------------------------------------------------


def _trained(train, steps, seed=0):
    task = FakeStudentTask()
    torch.manual_seed(seed)
    model = task.build()
    options = TrainOptions(lr=0.01, warmup_steps=5, max_steps=steps)
    optimizer, scheduler = make_optimizer(model, options)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        batch = [train[i] for i in rng.choice(len(train), 8, replace=False)]
        parts = train_step(model, task, task.collate(batch), optimizer, scheduler, 1.0)
        losses.append(parts["loss"])
    return task, model, optimizer, scheduler, losses


def test_train_step_reduces_the_loss_and_evaluate_measures_wer(rows):
    train, dev = rows
    task, model, _, _, losses = _trained(train, 200)
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20])
    untrained = evaluate(task.build(), task, dev)
    trained = evaluate(model, task, dev, batch_size=5)
    assert untrained["dev_wer"] >= 0.9 and trained["dev_utterances"] == 16
    assert trained["dev_wer"] < 0.1


def test_non_finite_gradients_skip_the_update(rows):
    train, _ = rows
    task = FakeStudentTask()
    model = task.build()
    optimizer, scheduler = make_optimizer(model, TrainOptions())
    train_step(model, task, task.collate(train[:4]), optimizer, scheduler, 1.0)
    before = [p.detach().clone() for p in model.parameters()]
    batch = task.collate(train[:4])
    batch["features"][0, 0, 0] = float("nan")
    parts = train_step(model, task, batch, optimizer, scheduler, 1.0)
    assert parts["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_checkpoint_round_trip_and_export_load(rows, tmp_path):
    train, dev = rows
    task, model, optimizer, scheduler, _ = _trained(train, 30)
    state = TrainState(step=30, best_wer=0.5, best_step=20, bad_evals=1)
    save_checkpoint(tmp_path, model, optimizer, scheduler, state)
    fresh = task.build()
    fresh_opt, fresh_sched = make_optimizer(fresh, TrainOptions(lr=0.01, warmup_steps=5))
    assert load_checkpoint(tmp_path, fresh, fresh_opt, fresh_sched) == state
    assert fresh_sched.last_epoch == 30
    assert fresh_opt.state_dict()["state"][0]["step"] == 30
    export_checkpoint(task, tmp_path, tmp_path / "model")
    loaded = audiodistill.load_model(tmp_path / "model")
    audios = [r["audio"] for r in dev[:4]]
    assert loaded.transcribe(audios) == task.transcribe(model, audios)
    with pytest.raises(FileNotFoundError, match="not an exported student"):
        audiodistill.load_model(tmp_path)


def test_early_stop_after_patience_evaluations_without_a_best():
    state = TrainState()
    for step, wer in [(10, 0.5), (20, 0.4), (30, 0.45), (40, 0.41)]:
        state.step = step
        state.record_eval(wer, patience=2)
    assert (state.best_wer, state.best_step, state.stopped) == (0.4, 20, True)
    never = TrainState()
    for wer in (0.5, 0.6, 0.7):
        never.record_eval(wer, patience=0)
    assert not never.stopped


def test_schedule_warms_up_then_decays_to_a_tenth():
    factors = [lr_factor(s, 10, 100) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))


def test_a_run_dir_resumes_only_its_own_student(labels_dir, tmp_path):
    from pipelines.distill import run

    (tmp_path / "config.yaml").write_text("student: streaming\n")
    options = DistillOptions(student="fake", out=str(tmp_path), data=DataOptions(str(labels_dir)))
    with pytest.raises(DataError, match="holds a 'streaming' run"):
        run(options)
    # the same student on other data would silently continue the old run: refused too
    save_config(replace(options, data=DataOptions("elsewhere")), tmp_path / "config.yaml")
    with pytest.raises(DataError, match="other data options"):
        run(options)


def test_label_runs_and_teachers_reach_workers_as_absolute_paths(tmp_path, monkeypatch):
    from pipelines.distill import with_absolute_paths

    for folder in ("teachers/codec", "runs/labels", "runs/real"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    options = load_config(
        DistillOptions,
        overrides=[
            "codec.teacher=teachers/codec",
            "whisper_distil.teacher=openai/whisper-tiny",
            "data.labels=runs/labels",
            "data.extra_labels=[runs/real]",
        ],
    )
    fixed = with_absolute_paths(options)
    assert fixed.codec.teacher == str(tmp_path / "teachers" / "codec")
    assert fixed.whisper_distil.teacher == "openai/whisper-tiny"  # a hub id stays as it is
    assert fixed.data.labels == str(tmp_path / "runs" / "labels")
    assert fixed.data.extra_labels == (str(tmp_path / "runs" / "real"),)


def test_a_student_registers_in_one_place():
    """Every registered kind has its options section in DistillOptions, and its task and
    loader import; DistillOptions has no section for a kind the registry does not know."""
    from audiodistill.students.registry import STUDENT_KINDS, _imported

    sections = {f.name for f in dataclasses.fields(DistillOptions)} - {
        "student", "out", "data", "train"
    }
    assert sections == {kind.section for kind in STUDENT_KINDS.values()}
    for kind in STUDENT_KINDS.values():
        assert isinstance(getattr(DistillOptions(), kind.section), kind.options)
        assert callable(_imported(kind.task)) and callable(_imported(kind.loader))
