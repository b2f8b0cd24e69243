"""Tracing a torch module to ONNX and quantizing the result: the steps every export shares."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17  # LayerNormalization is a single op from opset 17


def trace_to_onnx(
    graph: nn.Module,
    example: tuple,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> None:
    """Trace `graph` (in eval mode) on `example` to an ONNX file; `dynamic` names the axes
    that may change size at run time.

    The TorchScript exporter (dynamo=False) records the ops as eager code runs them and needs
    no extra packages; the torch.export-based one would need onnxscript. Tracing warns about
    Python branches on shapes (the streaming step's empty-chunk check, its q/k/v split):
    runtimes never send an empty chunk and the split has a fixed size, so they are expected.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
        )


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8: weights of every MatMul/Gemm quantized per output channel ahead of time,
    activations quantized per call from their observed range (no calibration data needed)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the quantizer logs a generic "consider pre-processing" hint on every call
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)
