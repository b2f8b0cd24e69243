"""Neural audio codecs: the transformers codec families behind one interface, codec
distillation losses, quality metrics, the codec eval report and codec teacher training.
"""
