"""Stopping greedy decoding when it loops.

A greedy Whisper-style decoder that loses track of the audio can repeat one phrase until it
runs out of tokens ("a Fes, a Fes, a Fes, ..."): one such utterance adds dozens of insertions
and costs the whole token budget in time. Whisper answers with a temperature fallback, which
makes decoding random; here a transcript simply ends once its last tokens are one block
repeated `LOOP_REPEATS` times back to back, keeping the first copy. Plain Python (no torch),
so the ONNX edge runtime stops at the same token as `whisper_decode.greedy_decode`.
"""

from __future__ import annotations

from collections.abc import Sequence

# back-to-back copies of one block that count as a loop: legitimate speech rarely says the
# same words four times running, and a decoder that does is almost always stuck
LOOP_REPEATS = 4
# longest block looked for, in tokens: a short clause ("in the regulatory affairs,")
MAX_LOOP_TOKENS = 16


def loop_excess(tokens: Sequence[int], repeats: int = LOOP_REPEATS) -> int:
    """How many tokens to drop from the end of `tokens`: all but the first copy when they end
    in a block repeated `repeats` or more times back to back, else 0 (`repeats` 0: never)."""
    if repeats < 2:
        return 0
    for period in range(1, min(MAX_LOOP_TOKENS, len(tokens) // repeats) + 1):
        block = list(tokens[-period:])
        if all(
            list(tokens[len(tokens) - (copy + 1) * period : len(tokens) - copy * period]) == block
            for copy in range(1, repeats)
        ):
            return (repeats - 1) * period
    return 0


def without_loop(tokens: Sequence[int], repeats: int = LOOP_REPEATS) -> list[int]:
    """`tokens` as a decoder checking `loop_excess` after every token would have ended them:
    for decoders that cannot be stopped mid-way (CTranslate2)."""
    for end in range(1, len(tokens) + 1):
        excess = loop_excess(tokens[:end], repeats)
        if excess:
            return list(tokens[: end - excess])
    return list(tokens)
