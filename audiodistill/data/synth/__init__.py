"""The embedded synthetic corpus: sentences, the voices that read them, augmentation.
"""
