"""Class-conditional GANs with a global-context block: HamGAN (Hamburger), SAGAN (self-attention), SNGAN.

Paper: Geng et al., ICLR 2021, Sec. 4.3 / Table 6 (HamGAN on ImageNet 128x128). Reference code consulted:
Enjoy-Hamburger ``gan/HamGAN/{generator,discriminator,ops,ham}.py`` (TF, on TF-GAN's SAGAN) and
PyTorch-StudioGAN ``src/models/resnet.py``, ``src/utils/ops.py`` (conventions: orthogonal init, SN eps).

The Hamburger is the library's :class:`~hamburger.blocks.Hamburger` configured as the official
``sn_hamburger_v1`` / ``_v2``: spectral-norm 1x1 breads, NMF with the one-step gradient (ReLU before the ham),
class-conditional BatchNorm after the upper bread (v1) or in the cheese (v2) in G and no norm in D, output
``x + sigma * branch`` with ``sigma`` (``coef_ham``) initialised to 0 and no output activation.

Differences from the official GAN code (see docs/gan.md, "Models"):

* the NMF's initial dictionary is U[0, 1) with unit-norm columns (the library's NMF; the GAN code does not
  normalise it), and in eval the library's fixed RNG-free dictionary is used (``eval_init="fixed"``);
* the lower bread has a bias (the GAN ``sn_conv1x1`` has none);
* v2's cheese maps ``d -> d`` then the upper bread ``d -> C`` (the GAN code: ``d -> C``, ``C -> C``); the two
  agree for the default ``d = C``;
* CD keeps its normalised-token assignment (the library's CD; ``ridge`` 0.01 as in the GAN code must be set);
* orthogonal init (StudioGAN) instead of TF's Glorot-uniform; class-conditional BN gains/biases are plain
  per-class tables (as TF-GAN), not spectral-normalised linears (StudioGAN).
"""

from .config import CONTEXTS, IMAGE_SIZES, GANConfig
from .layers import SNSelfAttention2d, sn_conv2d, sn_embedding, sn_linear
from .networks import Discriminator, Generator, check_labels
from .registry import create_gan, gan_config, list_gans, register_gan

__all__ = [
    "CONTEXTS",
    "IMAGE_SIZES",
    "Discriminator",
    "GANConfig",
    "Generator",
    "SNSelfAttention2d",
    "check_labels",
    "create_gan",
    "gan_config",
    "list_gans",
    "register_gan",
    "sn_conv2d",
    "sn_embedding",
    "sn_linear",
]
