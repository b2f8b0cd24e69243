"""Export: a trained student as a self-contained ONNX directory (fp32, optionally int8),
which the numpy-only runtime in `audiodistill.edge` loads.
"""
