"""``hamburger seg predict``: segment an image file or a folder of images with a trained checkpoint.

For every input image ``NAME.ext`` it writes ``NAME.png`` (palette PNG, pixel value = class index, colours
from the dataset palette) and ``NAME_overlay.png`` (the image blended with the coloured mask).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "list_images", "load_module", "main", "predict_paths"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(path: str) -> list[str]:
    """``path`` itself if it is a file, else the image files of the folder (sorted, not recursive)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input: no such file or folder: {path}")
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f"--input: folder {path} contains no images with extensions {IMAGE_EXTENSIONS}")
    return files


def load_module(ckpt_path: str, *, map_location: str = "cpu", model: str | None = None):
    """Rebuild the :class:`SegModule` saved in a Lightning checkpoint (``weights_only`` load).

    The checkpoint's hyper-parameters are vetted by :func:`~hamburger.recipes.seg.module.checkpoint_hparams`:
    a model import path stored in the checkpoint is refused unless ``model`` (what the user typed) names it.

    Returns:
        ``(module, meta)`` with ``meta`` holding ``class_names``, ``palette``, ``mean`` and ``std``.
    """
    from ...training.hparams import read_checkpoint
    from .datamodule import IMAGENET_MEAN, IMAGENET_STD
    from .module import SegModule, checkpoint_hparams

    ckpt = read_checkpoint(ckpt_path)  # weights_only, tensors memory-mapped; moved by module.to(map_location)
    if "hyper_parameters" not in ckpt:
        raise ValueError(f"{ckpt_path} is not a checkpoint of the segmentation recipe (no state_dict/hyper_parameters)")
    hparams = checkpoint_hparams(ckpt["hyper_parameters"], source=ckpt_path, model=model)
    if model is not None and model != hparams.get("model", "tiny_ham"):
        raise ValueError(f"--model {model!r} differs from the checkpoint's model {hparams.get('model')!r}")
    module = SegModule(**hparams)
    module.load_state_dict(ckpt["state_dict"])
    module.to(map_location).eval()
    meta = dict(ckpt.get("seg_meta") or {})
    data_hp = ckpt.get("datamodule_hyper_parameters") or {}
    meta["mean"] = meta.get("mean") or list(data_hp.get("mean", IMAGENET_MEAN))
    meta["std"] = meta.get("std") or list(data_hp.get("std", IMAGENET_STD))
    k = hparams["num_classes"]
    if not meta.get("palette") or len(meta["palette"]) < k:
        meta["palette"] = _default_palette(k)
    if not meta.get("class_names"):
        meta["class_names"] = [str(i) for i in range(k)]
    return module, meta


def _default_palette(k: int) -> list[list[int]]:
    """PASCAL VOC's bit-interleaved colour map."""
    out = []
    for i in range(k):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append([r, g, b])
    return out


@torch.no_grad()
def predict_paths(module, meta: dict, paths: Sequence[str], output: str, *, alpha: float = 0.5) -> list[str]:
    """Segment each image in ``paths``; write the mask and overlay PNGs into ``output``; return mask paths."""
    from PIL import Image

    from .data._io import read_image

    os.makedirs(output, exist_ok=True)
    mean = torch.tensor(meta["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32).view(3, 1, 1)
    palette = np.asarray(meta["palette"], dtype=np.uint8)
    flat_palette = palette.reshape(-1).tolist() + [0] * (768 - palette.size)
    device = next(module.parameters()).device
    written = []
    for path in paths:
        image = read_image(path)
        x = ((image.float() / 255.0 - mean) / std).unsqueeze(0).to(device)
        pred = module(x).argmax(1)[0].cpu().numpy().astype(np.uint8)
        stem = os.path.splitext(os.path.basename(path))[0]
        mask_img = Image.fromarray(pred, mode="P")
        mask_img.putpalette(flat_palette[:768])
        mask_path = os.path.join(output, f"{stem}.png")
        mask_img.save(mask_path)
        colour = palette[pred].astype(np.float32)
        rgb = image.permute(1, 2, 0).numpy().astype(np.float32)
        blend = ((1 - alpha) * rgb + alpha * colour).clip(0, 255).astype(np.uint8)
        Image.fromarray(blend).save(os.path.join(output, f"{stem}_overlay.png"))
        written.append(mask_path)
    return written


def main(argv: list[str] | None = None) -> int:
    from ...training.cli import ArgumentParser  # one-line errors, no abbreviated options

    parser = ArgumentParser(prog="hamburger seg predict", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="Lightning checkpoint written by 'hamburger seg fit'")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="folder for the masks and overlays")
    parser.add_argument(
        "--mode",
        choices=("single", "multiscale", "slide"),
        default=None,
        help="inference mode (default: the checkpoint's eval_mode)",
    )
    parser.add_argument("--scales", type=float, nargs="+", default=None, help="multi-scale factors")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="add flipped views")
    parser.add_argument("--crop_size", type=int, default=None, help="sliding-window crop")
    parser.add_argument("--stride", type=int, default=None, help="sliding-window stride")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask colours")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument(
        "--model",
        default=None,
        help="the checkpoint's model; needed (and trusted) when it is an import path 'pkg.module:factory'",
    )
    args = parser.parse_args(argv)
    try:
        paths = list_images(args.input)
        module, meta = load_module(args.ckpt_path, model=args.model)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        parser.error(str(err))
    for key, value in (
        ("eval_mode", args.mode),
        ("eval_scales", args.scales),
        ("eval_flip", args.flip),
        ("eval_crop_size", args.crop_size),
        ("eval_stride", args.stride),
    ):
        if value is not None:
            module.hparams[key] = value
    module.to(args.device)
    written = predict_paths(module, meta, paths, args.output, alpha=args.alpha)
    print(f"wrote {len(written)} masks (+ overlays) to {args.output}")
    return 0
