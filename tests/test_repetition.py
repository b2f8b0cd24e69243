import torch

from audiodistill.decoding.repetition import LOOP_REPEATS, loop_excess, without_loop
from audiodistill.decoding.whisper_greedy import Decoded, _end_loops


def test_a_block_repeated_four_times_is_cut_to_its_first_copy():
    tokens = [7, 8, 1, 2, 3] * 1 + [1, 2, 3] * 3  # "x y | a b c" then a b c three more times
    assert loop_excess(tokens) == 9
    assert without_loop(tokens) == [7, 8, 1, 2, 3]


def test_three_copies_or_a_broken_pattern_is_not_a_loop():
    assert loop_excess([5, 1, 2, 1, 2, 1, 2]) == 0
    assert loop_excess([1, 2, 1, 2, 9, 1, 2, 1, 2]) == 0
    assert loop_excess([4, 4, 4]) == 0
    assert loop_excess([]) == 0


def test_single_token_and_long_block_loops():
    assert loop_excess([3, 9, 9, 9, 9]) == 3
    block = list(range(100, 116))  # 16 tokens: the longest block looked for
    assert loop_excess(block * LOOP_REPEATS) == 16 * (LOOP_REPEATS - 1)
    longer = list(range(100, 117))
    assert loop_excess(longer * LOOP_REPEATS) == 0


def test_repeats_below_two_never_cuts():
    assert loop_excess([9, 9, 9, 9, 9], repeats=0) == 0
    assert without_loop([9] * 10, repeats=0) == [9] * 10


def test_without_loop_stops_at_the_first_loop_as_a_stepping_decoder_would():
    # the loop starts, then the decoder wanders into a second pattern: cut at the first
    tokens = [1] + [5, 6] * 4 + [7, 5, 6, 7, 5, 6]
    assert without_loop(tokens) == [1, 5, 6]


def test_end_loops_trims_tokens_soft_targets_and_log_probs_consistently():
    looping = Decoded([], float("nan"))
    fine = Decoded([], float("nan"))
    for token in [1, 2, 3, 2, 3, 2, 3, 2, 3]:
        for result in (looping, fine):
            result.token_ids.append(token if result is looping else token + len(result.token_ids))
            result.step_logprobs.append(-0.5)
            result.topk_ids.append([token])
            result.topk_logprobs.append([-0.5])
    ended = _end_loops([looping, fine], torch.tensor([False, False]), LOOP_REPEATS)
    assert ended.tolist() == [True, False]
    assert looping.token_ids == [1, 2, 3]
    assert looping.steps == 3 and len(looping.topk_ids) == 3 and len(looping.topk_logprobs) == 3
    assert looping.sum_logprob == -1.5 and looping.avg_logprob == -0.5
    assert fine.steps == 9 and len(fine.token_ids) == 9
