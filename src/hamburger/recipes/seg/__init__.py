"""Semantic-segmentation recipe: datasets (:mod:`.data`), paired transforms (:mod:`.transforms`),
training, evaluation, prediction and the ``hamburger seg`` command line.

Submodules are imported on demand; this package itself imports nothing heavy.
"""
