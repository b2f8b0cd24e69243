"""Training: the distillation loop every student shares, its options and schedule, and the
knowledge-distillation losses. Plain PyTorch; the Ray Train adapter is `pipelines/distill.py`.
"""
