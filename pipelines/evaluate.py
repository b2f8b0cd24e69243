"""`audiodistill eval` on Ray: each model scored by its own Ray tasks, utterances split over
`workers` of them.

The measuring code is evaluation/measurement.py's, unchanged: each task loads the model in a
fresh worker process (its peak memory is that model's), transcribes a contiguous share of the
utterances one at a time, and the shares are joined in manifest order before scoring, so WER
and hypotheses are those of a single process. RTF stays the single-stream cost per utterance;
with workers sharing a machine's cores it is higher than on an idle one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audiodistill.config import ConfigError
from audiodistill.data.manifest import Utterance
from audiodistill.evaluation.measurement import (
    EvalOptions,
    Measurements,
    ModelInfo,
    ModelReport,
    load_utterances,
    measure_spec,
    merge_measurements,
    write_results,
)


def shares(utterances: Sequence[Utterance], workers: int) -> list[list[Utterance]]:
    """Contiguous, near-equal, non-empty shares in manifest order."""
    bounds = np.linspace(0, len(utterances), min(workers, len(utterances)) + 1).astype(int)
    return [list(utterances[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _measure_on_ray(
    spec: str, options: EvalOptions, utterances: Sequence[Utterance]
) -> tuple[ModelInfo, Measurements]:
    import ray

    # max_calls=1: the worker process exits after its share, so no later task inherits the
    # model's memory; each task also resets its high-water mark before loading the model
    task = ray.remote(num_cpus=options.threads, max_calls=1)(measure_spec)
    parts = ray.get(
        [
            task.remote(spec, options.threads, options.compute_type, share)
            for share in shares(utterances, options.workers)
        ]
    )
    return parts[0][0], merge_measurements([m for _, m in parts])


def run(options: EvalOptions) -> list[ModelReport] | dict:
    """Score every model (one after another, each over `workers` Ray tasks); write reports.
    With workers=1 no Ray is started: each model runs in a fresh local process. Codecs are
    scored by audiodistill.codec.codec_report (in this process) and give its report dict."""
    from audiodistill.codec import codec_report
    from audiodistill.evaluation.measurement import run as run_locally

    codecs = [codec_report.is_codec(spec) for spec in options.models]
    if any(codecs):
        if not all(codecs):
            raise ConfigError("eval: score codecs and speech recognizers in separate runs")
        return codec_report.run(options)
    if options.workers <= 1:
        return run_locally(options)
    from pipelines.pseudo_label import init_ray

    utterances = load_utterances(options)
    init_ray()
    measured = [_measure_on_ray(spec, options, utterances) for spec in options.models]
    return write_results(options, utterances, measured)
