"""Data: audio loading and constants, manifests, the Parquet pseudo-label store, label
filters, and the synthetic speech corpus (`synth/`). No models live here.
"""
