"""Training recipes built on the hamburger models (segmentation under :mod:`hamburger.recipes.seg`).

Recipes may depend on the optional ``seg`` extras (Lightning, torchmetrics, Pillow); ``import hamburger``
never imports this package.
"""
