"""Stand-ins for tests: tiny untrained models, TTS speech fixtures, loopback clients.

Nothing in the library, pipelines or serve imports this package (tests/test_layers.py).
"""
