import math

import pytest
import torch

from audiodistill.training.kd_losses import (
    FullDistillationLoss,
    HiddenStateLoss,
    TokenCrossEntropyLoss,
    TopKDistillationLoss,
    WhisperDistillationLoss,
)


def test_topk_kl_matches_hand_computation():
    # vocab of 3, one position; teacher top-2 = ids (0, 1) with probs (0.6, 0.3) at T=1
    logits = torch.tensor([[[1.0, 0.0, -1.0]]])
    ids = torch.tensor([[[0, 1]]])
    logp = torch.log(torch.tensor([[[0.6, 0.3]]]))
    mask = torch.tensor([[True]])
    t = 2.0
    # teacher at T: renormalize p^(1/T) over the two ids
    a, b = 0.6 ** (1 / t), 0.3 ** (1 / t)
    p = [a / (a + b), b / (a + b)]
    z = sum(math.exp(x / t) for x in (1.0, 0.0, -1.0))
    q = [math.exp(1.0 / t) / z, math.exp(0.0 / t) / z]
    expected = t * t * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    got = TopKDistillationLoss(t)(logits, ids, logp, mask)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_topk_kl_is_zero_when_student_equals_teacher_on_full_support():
    logits = torch.randn(2, 3, 5)
    ids = torch.arange(5).expand(2, 3, 5)
    logp = torch.log_softmax(logits, -1)
    loss = TopKDistillationLoss(1.0)(logits, ids, logp, torch.ones(2, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_padding_is_masked_and_all_padding_gives_zero():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 6, requires_grad=True)
    ids = torch.randint(0, 6, (1, 4, 3))
    logp = torch.log_softmax(torch.randn(1, 4, 3), -1)
    kd = TopKDistillationLoss(2.0)
    mask = torch.tensor([[True, True, False, False]])
    garbage = logits.detach().clone()
    garbage[:, 2:] = 1e3  # padded positions must not matter
    assert kd(logits, ids, logp, mask).item() == pytest.approx(kd(garbage, ids, logp, mask).item())
    none = kd(logits, ids, logp, torch.zeros(1, 4, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()  # still differentiable


def test_full_kl_matches_hand_computation_and_masks_padding():
    # vocab of 2, one real position and one padded; teacher logits (0, ln 3): probs (1/4, 3/4)
    student = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    teacher = torch.tensor([[[0.0, math.log(3.0)], [-9.0, 9.0]]])
    mask = torch.tensor([[True, False]])
    t = 2.0
    a, b = 1.0, 3.0 ** (1 / t)  # teacher at T: p^(1/T) renormalized
    p = [a / (a + b), b / (a + b)]
    expected = t * t * sum(pi * (math.log(pi) - math.log(0.5)) for pi in p)
    kd = FullDistillationLoss(t)
    assert kd(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)
    assert kd(teacher, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert kd(student, teacher, torch.zeros(1, 2, dtype=torch.bool)).item() == 0.0


def test_combined_loss_takes_online_teacher_logits():
    torch.manual_seed(0)
    logits, teacher = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100]])
    out = WhisperDistillationLoss(alpha=0.5, beta=2.0, temperature=3.0)(
        logits, labels, teacher_logits=teacher
    )
    full = FullDistillationLoss(3.0)(logits, teacher, labels != -100)
    assert out["kd"].item() == pytest.approx(full.item())
    assert out["loss"].item() == pytest.approx(0.5 * out["ce"].item() + 2.0 * out["kd"].item())


def test_cross_entropy_ignores_padding():
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[0, -100]])
    assert TokenCrossEntropyLoss()(logits, labels).item() == pytest.approx(math.log(2))
    assert TokenCrossEntropyLoss()(logits, torch.full((1, 2), -100)).item() == 0.0


def test_combined_loss_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100]])
    ids = torch.randint(0, 7, (2, 3, 4))
    logp = torch.log_softmax(torch.randn(2, 3, 4), -1)
    out = WhisperDistillationLoss(alpha=0.5, beta=2.0, temperature=3.0)(logits, labels, ids, logp)
    assert out["loss"].item() == pytest.approx(0.5 * out["ce"].item() + 2.0 * out["kd"].item())


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_hidden_state_loss_resamples_time_and_masks(kind):
    torch.manual_seed(0)
    loss = HiddenStateLoss(8, 4, kind)
    student = torch.randn(2, 10, 8)
    teacher = torch.randn(2, 20, 4)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 15:] = False
    value = loss(student, teacher, mask)
    assert value.item() > 0
    teacher_changed = teacher.clone()
    teacher_changed[1, 15:] += 100.0  # only padding changes
    assert loss(student, teacher_changed, mask).item() == pytest.approx(value.item())
