"""Convert official Light-Ham / SegNeXt / HamNet checkpoints to this library's heads.

Jobs, one module each: :mod:`.read` (safe file reading: ``torch.load(weights_only=True)`` with numpy
scalars allowed, and an inert restricted unpickler for mmengine checkpoints), :mod:`.options` (official
``ham_kwargs`` or an mmseg config -> :class:`~hamburger.blocks.HamOptions`), :mod:`.mapping` (key
translation per source format, tensor validation), :mod:`.write` (atomic output) and :mod:`.cli`.

Weights do not store the solver options; give the official ``ham_kwargs`` (``MD_R`` is required)::

    hamburger convert CKPT OUT_DIR (--ham-kwargs '{"MD_R": 16}' | --mmseg-config CONFIG.py)
                                   [--in-channels 64,160,256] [--model NAME [--set KEY=JSON ...]]

Without ``--model`` the CLI writes ``converted.safetensors`` (keys ``head.*``, ``aux_head.*``,
``backbone.body.*``) and ``conversion.json`` (head class, head and ham options, unmatched keys); with it,
the registered model is built with the checkpoint's head structure and complete ham options, loaded
(missing keys are an error) and written by ``save_pretrained``.
"""

from __future__ import annotations

from .cli import main
from .mapping import Conversion, convert_state_dict, detect_source
from .options import SOURCES, MmsegConfig, ham_kwargs_to_options, read_mmseg_config
from .read import read_checkpoint
from .write import write_conversion

__all__ = [
    "SOURCES",
    "Conversion",
    "MmsegConfig",
    "convert_state_dict",
    "detect_source",
    "ham_kwargs_to_options",
    "main",
    "read_checkpoint",
    "read_mmseg_config",
    "write_conversion",
]
