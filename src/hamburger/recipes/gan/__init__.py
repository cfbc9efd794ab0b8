"""Class-conditional GAN recipe (HamGAN): evaluation features (:mod:`.features`) and metrics (:mod:`.metrics`).

Submodules are imported on demand; this package itself imports nothing heavy.
"""
