"""ONNX Runtime sessions on an export's graphs, opened the same way for every kind of export."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from audiodistill.errors import ModelError


def checked_precision(path: Path, config: dict, int8: bool) -> str:
    """The precision to run, "int8" or "fp32", after checking the export has it."""
    precision = "int8" if int8 else "fp32"
    if precision not in config["models"]:
        raise ModelError(
            f"{path}: no {precision} model (it has {', '.join(config['models'])}); "
            "--int8 runs the int8 one, `audiodistill export --int8` makes one"
        )
    return precision


def cpu_session(graph: Path, threads: int) -> ort.InferenceSession:
    """A CPU session on `threads` threads; one inter-op thread, as a step or a decoder call
    is one chain of ops with no parallel branches."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
