"""Codec distillation losses: latent regression, per-codebook code cross-entropy, and
multi-resolution spectral reconstruction. Shapes follow transformers codecs: latents
[B, D, T] (channels first), codes [B, n_q, T], audio [B, N]; masks are true on real frames
or samples, false on batch padding.

Code logits come from distances, not from a separate classifier head: for codebook q the
logit of entry j is -||r_q - c_qj||^2 / s_q, where r_q is the residual a residual vector quantizer
sees at stage q (the latent minus the entries of the earlier stages). A nearest-neighbour
quantizer picks exactly the argmax of these logits, so cross-entropy on the teacher's code
ids trains the student's latents to land where its own quantizer then emits the teacher's
ids. The residuals subtract the *teacher's* entries for the earlier stages (teacher
forcing): each stage is trained on the residual it would see if the earlier ones were right.
s_q, the mean squared distance between two entries of the codebook, makes the logits' sharpness
independent of the latents' scale (about 1e-5 for a random-init codec, about 1 for a trained
one), and of the stage: later stages quantize ever smaller residuals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (n_fft, hop) of the reconstruction loss: ~5 ms to ~85 ms windows at 24 kHz, so both
# transients and pitch harmonics are resolved by one of them
RESOLUTIONS = ((128, 32), (512, 128), (2048, 512))
MEL_BANDS = 64  # at most; short windows get n_fft // 16 bands so none is empty
LOG_FLOOR = 1e-5


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def latent_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per frame between [B, D, T] latents, over real frames."""
    per_frame = (student.float() - teacher.float()).pow(2).mean(1)  # [B, T]
    return _masked_mean(per_frame, mask)


def residual_code_logits(
    latents: torch.Tensor,  # [B, D, T] pre-quantization latents
    codebooks: torch.Tensor,  # [n_q, K, D] residual quantizer entries
    teacher_codes: torch.Tensor,  # [B, n_q, T] the teacher's code ids
) -> torch.Tensor:
    """[B, n_q, T, K] logits -||r_q - c_qj||^2 / s_q with teacher-forced residuals r_q."""
    residual = latents.float().transpose(1, 2)  # [B, T, D]
    logits = []
    for q in range(teacher_codes.shape[1]):
        entries = codebooks[q].float()  # [K, D]
        distance = (
            residual.pow(2).sum(-1, keepdim=True)
            - 2 * residual @ entries.t()
            + entries.pow(2).sum(-1)
        )  # [B, T, K]
        spread = 2 * entries.detach().var(0, unbiased=False).sum()  # mean pairwise sq. distance
        logits.append(-distance / spread.clamp(min=1e-12))
        residual = residual - entries[teacher_codes[:, q].long()]
    return torch.stack(logits, dim=1)


def code_cross_entropy(
    logits: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of [B, n_q, T, K] logits on [B, n_q, T] code ids, mean over codebooks
    and real frames ([B, T] mask)."""
    per_position = F.cross_entropy(
        logits.permute(0, 3, 1, 2), codes.long(), reduction="none"
    )  # [B, n_q, T]
    return _masked_mean(per_position.mean(1), mask)


def _log_spectra(audio: torch.Tensor, n_fft: int, hop: int, mel: torch.Tensor):
    """(log magnitude [B, F, T], log mel [B, M, T]) of [B, N] audio."""
    window = torch.hann_window(n_fft, device=audio.device)
    magnitude = torch.stft(audio, n_fft, hop, window=window, return_complex=True).abs()
    mel_power = mel.t() @ magnitude.pow(2)
    return magnitude.clamp(min=LOG_FLOOR).log(), mel_power.clamp(min=LOG_FLOOR).log()


def multi_resolution_spectral_loss(
    estimate: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, sample_rate: int
) -> torch.Tensor:
    """Mean over RESOLUTIONS of L1(log |STFT|) + L1(log mel) between [B, N] signals.

    Both signals are zeroed on batch padding first, so padding compares as silence on both
    sides and adds nothing.
    """
    import torchaudio

    mask = mask.to(estimate.dtype)
    estimate, target = estimate.float() * mask, target.float() * mask
    total = estimate.new_zeros(())
    for n_fft, hop in RESOLUTIONS:
        mel = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 0.0, sample_rate / 2, min(MEL_BANDS, n_fft // 16), sample_rate
        ).to(estimate.device)
        est_mag, est_mel = _log_spectra(estimate, n_fft, hop, mel)
        tgt_mag, tgt_mel = _log_spectra(target, n_fft, hop, mel)
        total = total + (est_mag - tgt_mag).abs().mean() + (est_mel - tgt_mel).abs().mean()
    return total / len(RESOLUTIONS)
