"""Width pruning: start a narrower EnCodec student from its teacher's strongest channels.

A student of the teacher's family with fewer filters (students/codec_student.py) has the same layers
in the same order, each narrower. Instead of random weights it can start from the teacher's:
every layer keeps the output channels whose weights have the largest L2 norm (magnitude
filter pruning) and, of its inputs, exactly the channels the layer before it kept. The
student starts as a damaged copy of the teacher rather than from noise, and distillation
repairs it (the width-pruning-then-distil recipe of Minitron, at codec scale).

Channels are tied where EnCodec adds tensors: a residual block's shortcut and its last conv
write one channel space (their norms are summed to rank it), and the LSTM's output is added
to its input, so it keeps the channels of the conv before it. The latent (encoder output)
and waveform channels are never pruned unless the student's latent size is smaller.

Weight norm (EnCodec's default) stores a weight as magnitude g and direction v; a pruned
layer gets v = the kept slice of the teacher's effective weight and g = that slice's norm,
so its effective weight is exactly the slice.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def prune_into(teacher, student) -> torch.Tensor:
    """Fill `student` (an EncodecModel, same config but narrower) from `teacher`'s weights.
    Returns the teacher's latent channels the student kept (all of them unless its latent
    size is smaller); the caller slices the codebooks to them."""
    kept = torch.arange(1)  # the encoder reads one (mono) waveform channel
    with torch.no_grad():
        latents = _prune_layers(teacher.encoder.layers, student.encoder.layers, kept)
        _prune_layers(teacher.decoder.layers, student.decoder.layers, latents)
    return latents


def _prune_layers(teacher_layers, student_layers, kept: torch.Tensor) -> torch.Tensor:
    """Copy a stack layer by layer; `kept` are the input channels the student keeps.
    Returns the channels of the stack's output that the student kept."""
    for theirs, mine in zip(teacher_layers, student_layers, strict=True):
        name = type(theirs).__name__
        if name in ("EncodecConv1d", "EncodecConvTranspose1d"):
            out = _strongest(_output_norms(theirs.conv), mine.conv.out_channels)
            _copy_conv(theirs.conv, mine.conv, kept, out)
            kept = out
        elif name == "EncodecResnetBlock":
            kept = _prune_resnet_block(theirs, mine, kept)
        elif name == "EncodecLSTM":
            _copy_lstm(theirs.lstm, mine.lstm, kept)
        elif not isinstance(theirs, nn.ELU):
            raise ValueError(f"width pruning does not know EnCodec layer {name}")
    return kept


def _prune_resnet_block(theirs, mine, kept: torch.Tensor) -> torch.Tensor:
    """block = ELU, conv (to the hidden width), ELU, conv (back); output = shortcut + block."""
    if isinstance(theirs.shortcut, nn.Identity):
        raise ValueError(
            "width pruning needs EnCodec's conv shortcuts (use_conv_shortcut); "
            "use codec.init=random for this teacher"
        )
    first, last = theirs.block[1].conv, theirs.block[3].conv
    hidden = _strongest(_output_norms(first), mine.block[1].conv.out_channels)
    norms = _output_norms(last) + _output_norms(theirs.shortcut.conv)
    out = _strongest(norms, mine.block[3].conv.out_channels)
    _copy_conv(first, mine.block[1].conv, kept, hidden)
    _copy_conv(last, mine.block[3].conv, hidden, out)
    _copy_conv(theirs.shortcut.conv, mine.shortcut.conv, kept, out)
    return out


def _strongest(norms: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` largest norms, in their original order (all: the identity)."""
    return norms.topk(count).indices.sort().values


def _is_transposed(conv: nn.Module) -> bool:
    return isinstance(conv, nn.ConvTranspose1d)


def _output_norms(conv: nn.Module) -> torch.Tensor:
    """[out] L2 norm of each output channel's effective weight (Conv1d: [out, in, k];
    ConvTranspose1d: [in, out, k])."""
    weight = conv.weight.transpose(0, 1) if _is_transposed(conv) else conv.weight
    return weight.flatten(1).norm(dim=1)


def _copy_conv(theirs: nn.Module, mine: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor):
    weight = theirs.weight  # the effective weight, through weight norm if any
    if _is_transposed(theirs):
        weight = weight[inputs][:, outputs]
    else:
        weight = weight[outputs][:, inputs]
    if parametrize.is_parametrized(mine, "weight"):
        # torch's weight norm: original0 = g (norm over every dim but 0), original1 = v
        magnitude = weight.flatten(1).norm(dim=1).reshape(-1, *([1] * (weight.dim() - 1)))
        mine.parametrizations.weight.original0.copy_(magnitude)
        mine.parametrizations.weight.original1.copy_(weight)
    else:
        mine.weight.copy_(weight)
    if theirs.bias is not None:
        mine.bias.copy_(theirs.bias[outputs])


def _copy_lstm(theirs: nn.LSTM, mine: nn.LSTM, kept: torch.Tensor) -> None:
    """Input and hidden channels are both `kept` (EnCodec adds the LSTM's output to its
    input); gate rows are stacked [input, forget, cell, output], each `hidden_size` long.
    A student with fewer LSTM layers keeps the teacher's first ones."""
    hidden = theirs.hidden_size
    rows = torch.cat([gate * hidden + kept for gate in range(4)])
    for name, value in mine.named_parameters():
        sliced = getattr(theirs, name)[rows]
        if name.startswith("weight_"):
            sliced = sliced[:, kept]
        value.copy_(sliced)
