"""Evaluation: one measurement for every model (WER/CER, RTF, latency, size, memory), WER
itself, word-timing error, the edge benchmark, plots and the generated results page.
"""
