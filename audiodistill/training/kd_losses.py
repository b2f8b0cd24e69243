"""Knowledge-distillation losses, each a standalone nn.Module with masked padding.

Soft targets come from the pseudo-label shards as the teacher's top-k token log-probs at
temperature 1 (`topk_ids`, `topk_logprobs`, shape [B, T, k]); the full vocabulary
distribution is never stored, so the teacher side is renormalized over its top k
(`TopKDistillationLoss`). A teacher run online during training gives its whole distribution
(`FullDistillationLoss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions where mask is true; 0 (with a gradient path) when all are padding."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


class _TemperedLoss(nn.Module):
    """A distillation loss at temperature T > 0."""

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature


class TopKDistillationLoss(_TemperedLoss):
    """T^2 * KL(teacher_topk_T || student_T), averaged over non-padding positions.

    Teacher: softmax(topk_logprobs / T) over its k ids; dividing stored log-probs by T and
    renormalizing over the k ids gives exactly the top-k slice of the teacher's tempered
    distribution, renormalized. Student: log_softmax(logits / T) over the full vocabulary,
    read at the teacher's ids; its mass outside the top k only makes the loss larger, so
    the minimum still puts the student's mass where the teacher's is. The T^2 factor keeps
    gradient sizes comparable across temperatures (Hinton et al., 2015).
    """

    def forward(
        self,
        student_logits: torch.Tensor,  # [B, T, V]
        topk_ids: torch.Tensor,  # [B, T, k] int64
        topk_logprobs: torch.Tensor,  # [B, T, k] teacher log-probs at temperature 1
        mask: torch.Tensor,  # [B, T] true where a target exists
    ) -> torch.Tensor:
        t = self.temperature
        teacher_logp = F.log_softmax(topk_logprobs.float() / t, dim=-1)  # [B, T, k]
        student_logp = F.log_softmax(student_logits.float() / t, dim=-1)  # [B, T, V]
        student_at_k = student_logp.gather(-1, topk_ids.long())  # [B, T, k]
        kl = (teacher_logp.exp() * (teacher_logp - student_at_k)).sum(-1)  # [B, T]
        return t * t * _masked_mean(kl, mask)


class FullDistillationLoss(_TemperedLoss):
    """T^2 * KL(teacher_T || student_T) over the whole vocabulary, averaged over non-padding
    positions: for soft targets from a teacher run online, which nothing had to store."""

    def forward(
        self,
        student_logits: torch.Tensor,  # [B, T, V]
        teacher_logits: torch.Tensor,  # [B, T, V]
        mask: torch.Tensor,  # [B, T] true where a target exists
    ) -> torch.Tensor:
        t = self.temperature
        teacher_logp = F.log_softmax(teacher_logits.float() / t, dim=-1)  # [B, T, V]
        student_logp = F.log_softmax(student_logits.float() / t, dim=-1)  # [B, T, V]
        kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)  # [B, T]
        return t * t * _masked_mean(kl, mask)


class TokenCrossEntropyLoss(nn.Module):
    """Cross-entropy on hard pseudo-label tokens; positions with label -100 are ignored."""

    IGNORE = -100

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # logits [B, T, V], labels [B, T]
        mask = labels != self.IGNORE
        if not mask.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits[mask].float(), labels[mask])


class HiddenStateLoss(nn.Module):
    """Frame-level matching of student to teacher encoder states (projection + MSE or cosine).

    Student frames are resampled in time (linear interpolation) to the teacher's frame count
    when the two encoders run at different frame rates.
    """

    def __init__(self, student_dim: int, teacher_dim: int, kind: str = "mse"):
        super().__init__()
        if kind not in ("mse", "cosine"):
            raise ValueError(f"kind must be 'mse' or 'cosine', got {kind!r}")
        self.kind = kind
        self.proj = nn.Linear(student_dim, teacher_dim)

    def forward(
        self,
        student: torch.Tensor,  # [B, Ts, Ds]
        teacher: torch.Tensor,  # [B, Tt, Dt]
        teacher_mask: torch.Tensor,  # [B, Tt] true on real (non-padding) teacher frames
    ) -> torch.Tensor:
        projected = self.proj(student)  # [B, Ts, Dt]
        if projected.shape[1] != teacher.shape[1]:
            projected = F.interpolate(
                projected.transpose(1, 2), size=teacher.shape[1], mode="linear"
            ).transpose(1, 2)  # [B, Tt, Dt]
        if self.kind == "mse":
            per_frame = (projected - teacher.float()).pow(2).mean(-1)
        else:
            per_frame = 1.0 - F.cosine_similarity(projected, teacher.float(), dim=-1)
        return _masked_mean(per_frame, teacher_mask)


class WhisperDistillationLoss(nn.Module):
    """alpha * CE(pseudo-label tokens) + beta * T^2 * KL(teacher soft targets).

    The soft targets are the stored top-k (`topk_ids`, `topk_logprobs`) or, from a teacher
    run online, its logits over the whole vocabulary (`teacher_logits`, [B, T, V]).
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, temperature: float = 2.0):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.ce = TokenCrossEntropyLoss()
        self.topk_kd = TopKDistillationLoss(temperature)
        self.full_kd = FullDistillationLoss(temperature)

    def forward(
        self, logits, labels, topk_ids=None, topk_logprobs=None, teacher_logits=None
    ) -> dict[str, torch.Tensor]:
        ce = self.ce(logits, labels)
        mask = labels != TokenCrossEntropyLoss.IGNORE
        if teacher_logits is not None:
            kd = self.full_kd(logits, teacher_logits, mask)
        else:
            kd = self.topk_kd(logits, topk_ids, topk_logprobs, mask)
        return {"loss": self.alpha * ce + self.beta * kd, "ce": ce, "kd": kd}
