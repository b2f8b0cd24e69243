"""Decoding: Whisper greedy decoding with a KV cache, CTC decoding with a character n-gram
LM, repetition stopping, and word times from cross-attention or CTC frames.
"""
