"""The Ray jobs at work: pseudo-labelling and distillation at scale, and their throughput."""

from __future__ import annotations

from sections.common import code, load, pct, sources, table


def scale() -> list[str]:
    data = load("pseudo_label_scale.json")
    rows = [
        [
            f"{r['utterances']:,}",
            str(r["nodes"]),
            f"{r['shards']:,}",
            f"{r['driver_peak_rss_mb']:.0f}",
            f"{r['first_shard_seconds']:.1f}",
            f"{r['utterances_per_second']:.0f}",
            f"{r['job_seconds']:.0f}",
            f"{r['object_store_peak_mb']:.0f}",
            f"{r['worker_peak_rss_mb']:.0f}",
        ]
        for r in data["runs"]
    ]
    t = data["targets"]
    met = "met" if max(t["driver_peak_rss_ratio"], t["first_shard_ratio"]) <= 1.5 else "**not met**"
    lines = [
        "## Labelling at scale (issue 20)",
        "",
        f"The pseudo-label stream over synthetic manifests of tiny clips with the fake teacher "
        f"({data['seconds_per_item'] * 1000:.0f} ms per utterance), "
        f"{data['shard_size']} utterances per shard, each size in a fresh process and a fresh "
        "Ray; the 4-node row is `ray.cluster_utils.Cluster` on the same machine. "
        f"Machine: {data['machine']}.",
        "",
    ]
    lines += table(
        [
            "utterances",
            "nodes",
            "shards",
            "driver peak RSS MB",
            "first shard s",
            "utt/s",
            "job s",
            "object store peak MB",
            "worker peak RSS MB",
        ],
        ["---:"] * 9,
        rows,
    )
    lines += [
        f"Largest over smallest single-node run: driver peak RSS "
        f"**{t['driver_peak_rss_ratio']:.2f}x**, first shard **{t['first_shard_ratio']:.2f}x** "
        f"(target within 1.5x: {met}).",
        "",
        sources("pseudo_label_scale.json", taken='2026-12-06, "Labelling at scale"')
        + " Re-measure (~15 min on 2 cores):",
        "",
        *code([data["command"]]),
    ]
    return lines


def distill_scale() -> list[str]:
    data = load("distill_scale.json")
    runs = data["runs"]
    rows = [
        [
            f"{r['label_rows']:,}",
            str(r["nodes"]),
            str(r["workers"]),
            f"{r['driver_rss_before_mb']:.0f} / {r['driver_peak_rss_mb']:.0f}",
            f"{r['prepare_seconds']:.1f}",
            f"{r['first_step_seconds']:.1f}",
            f"{r['steps_per_second']:.2f}",
            f"{r['samples_per_second']:.0f}",
            f"{r['job_seconds']:.0f}",
            f"{r['rows_trained']:,}",
            f"{r['object_store_peak_mb']:.1f}",
            f"{r['train_worker_peak_rss_mb']:.0f}",
            pct(r["dev_wer"]),
        ]
        for r in runs
    ]
    t = data["targets"]
    met = "met" if t["train_worker_rss_target_met"] else "**not met**"
    largest = max(runs, key=lambda r: (r["nodes"] == 1, r["label_rows"]))
    cluster = [r for r in runs if r["nodes"] > 1]
    lines = [
        "## Distillation at scale (issue 20)",
        "",
        "The Ray Train job (`pipelines/distill.py`) with the fake student over synthetic "
        f"pseudo-label runs: shards of {data['shard_rows']:,} rows, every row a tone clip "
        f"(one of {data['clips']}, 3-10 digit words) with its text, token ids and "
        f"top-{data['top_k']} ids and log-probs per token. Every run trains {data['steps']} "
        "steps of "
        f"{data['batch_size']} clips per worker (rows streamed from the shards in windows of "
        f"{data['shuffle_rows']}), each size in a fresh process and a fresh Ray: 2 CPUs and 2 "
        "training workers, or "
        + (
            f"`ray.cluster_utils.Cluster` on the same machine ({cluster[0]['nodes']} nodes of "
            f"1 CPU beside a head of 0 CPUs, one worker per node)"
            if cluster
            else "no cluster run"
        )
        + f". Machine: {data['machine']}; taken {data['date']}.",
        "",
    ]
    lines += table(
        [
            "label rows",
            "nodes",
            "workers",
            "driver RSS MB before / peak",
            "prepare s",
            "first step s",
            "steps/s",
            "samples/s",
            "job s",
            "rows trained",
            "object store peak MB",
            "train worker peak RSS MB",
            "dev WER",
        ],
        ["---:"] * 13,
        rows,
    )
    lines += [
        f"Largest over smallest single-node run ({t['from_rows']:,} to {t['to_rows']:,} label "
        f"rows): training worker peak RSS (RssAnon of a RayTrainWorker process) "
        f"**{t['train_worker_peak_rss_ratio']:.2f}x** (target within 1.5x: {met}); driver "
        f"peak RSS **{t['driver_peak_rss_ratio']:.2f}x** and time to the first step "
        f"**{t['first_step_ratio']:.2f}x**: the driver reads the light columns (ids, paths, "
        "durations, texts, scores) of every row before any worker starts (`prepare s`). "
        "Every size trains the same number of steps, so the largest run trains on "
        f"{largest['rows_trained'] / largest['label_rows']:.0%} of its rows. Driver RSS "
        "*before* is the process after its imports and `ray.init`, before `run`; dev WER is "
        "the student's at the last step on 64 rows of 8 other clips (1.0 untrained).",
        "",
        sources("distill_scale.json") + " Re-measure:",
        "",
        *code([data["command"]]),
    ]
    return lines


def throughput() -> list[str]:
    runs = [load("pseudo_label_throughput.json"), load("pseudo_label_throughput_n192.json")]
    labels = {
        "plain": "plain in-process loop",
        "ray_x1": "Ray job, 1 actor",
        "ray_x2": "Ray job, 2 actors",
    }
    rows = []
    for key, label in labels.items():
        row = [label]
        for r in runs:
            row += [f"{r['wall_seconds'][key]:.1f}", f"{r['audio_seconds_per_second'][key]:.1f}"]
        rows.append(row)
    teacher = runs[0]["teacher"]
    head = ["variant"]
    for r in runs:
        head += [f"n={r['utterances']} wall s", "audio s/s"]
    lines = [
        "## Pseudo-label throughput: the Ray job against a plain loop (issues 2, 20)",
        "",
        f"Synthetic utterances, the {teacher['backend']} teacher ({teacher['compute_type']}, "
        f"{teacher['threads']} thread per actor), model loading timed.",
        "",
    ]
    lines += table(head, ["---"] + ["---:"] * (len(head) - 1), rows)
    for r in runs:
        x1, x2 = r["ratio_ray_x1_vs_plain"], r["speedup_ray_x2_vs_x1"]
        lines.append(
            f"- n={r['utterances']}: Ray x1 / plain **{x1:.2f}** (>= 0.9: "
            f"{'met' if x1 >= 0.9 else '**not met**'}), Ray x2 / x1 **{x2:.2f}** (>= 1.7: "
            f"{'met' if x2 >= 1.7 else '**not met**'})."
        )
    lines.append("")
    lines += [
        sources(
            "pseudo_label_throughput.json",
            "pseudo_label_throughput_n192.json",
            taken='2026-12-06, "Labelling at scale"',
        )
        + " Re-measure (the command is not recorded in the JSON; as run):",
        "",
        *code(
            [
                "python benchmarks/pseudo_label_throughput.py --manifest data/synth/manifest.jsonl "
                f"--n {r['utterances']}"
                for r in runs
            ]
        ),
    ]
    return lines


def training() -> list[str]:
    data = load("train_throughput.json")
    rows = [
        [str(r["workers"]), f"{r['samples_per_s']:.1f}", f"{r['audio_seconds_per_s']:.1f}"]
        for r in data["runs"]
    ]
    return [
        "## Training throughput, 1 and 2 Ray Train workers (issue 3)",
        "",
        f"The {data['student']} student (the from-scratch xs Conformer of the day), "
        f"{data['device']}, dev evaluation off.",
        "",
        *table(["workers", "samples/s", "audio s/s"], ["---:", "---:", "---:"], rows),
        f"2 workers / 1: **{data['speedup_2_vs_1']:.2f}x**.",
        "",
        sources("train_throughput.json", taken='2026-11-30, "Training throughput"')
        + f" The JSON records the config as `{data['config']}`, since renamed to "
        "configs/distill/streaming_conformer.yaml. Re-measure:",
        "",
        *code(
            [
                "python benchmarks/train_throughput.py --labels runs/quickstart/pseudo_labels "
                "--config configs/distill/streaming_conformer.yaml --steps 60"
            ]
        ),
    ]
