"""``hamburger seg predict``: segment an image file or a folder of images with a trained checkpoint.

For every input image ``NAME.ext`` it writes ``NAME.png`` (palette PNG, pixel value = class index, colours
from the dataset palette) and ``NAME_overlay.png`` (the image blended with the coloured mask). Inputs whose
names would collide (``a.png`` and ``a.jpg``) keep their extension: ``a_png.png``, ``a_jpg.png``. The output
folder may not be (or lie inside) the folder of the inputs, every file is written atomically, and an
unreadable image is reported (one line) and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "list_images", "load_module", "main", "output_paths", "predict_paths"]

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
    data_kwargs = {**(data_hp.get("dataset_kwargs") or {}), **(data_hp.get("val_kwargs") or {})}
    meta["image_scale"] = meta.get("image_scale") or data_kwargs.get("image_scale", "dtype")
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


def _is_within(path: str, folder: str) -> bool:
    return path == folder or os.path.commonpath([path, folder]) == folder


def output_paths(paths: Sequence[str], output: str) -> list[tuple[str, str]]:
    """The ``(mask, overlay)`` files :func:`predict_paths` writes for each of ``paths``, checked first.

    Outputs are named by the input's stem; inputs whose outputs would collide (``a.png`` / ``a.jpg``, compared
    without case) are named with their extension too (``a_png.png``, ``a_jpg.png``).

    Raises:
        ValueError: ``output`` is a file, or is (or lies inside) the folder of an input, where masks would
            replace or mix with the user's images; or two inputs would still write the same file.
    """
    out = os.path.realpath(output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--output {output} is a file; give a folder for the masks and overlays")
    for folder in sorted({os.path.dirname(os.path.realpath(p)) for p in paths}):
        if _is_within(out, folder):
            raise ValueError(
                f"--output {output} is the input folder {folder} or inside it: the masks would replace or mix "
                f"with your images; choose a folder outside it"
            )

    def files(name: str) -> tuple[str, str]:
        return f"{name}.png", f"{name}_overlay.png"

    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    for attempt in range(2):
        owners: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            for file in files(name):
                owners[file.lower()].append(i)
        clashes = [group for group in owners.values() if len(group) > 1]
        if not clashes:
            break
        if attempt == 1:
            first, second = paths[clashes[0][0]], paths[clashes[0][1]]
            raise ValueError(f"--input: {first} and {second} would write the same output file; rename one of them")
        for i in {i for group in clashes for i in group}:
            stem, ext = os.path.splitext(os.path.basename(paths[i]))
            names[i] = f"{stem}_{ext.lstrip('.').lower()}"
    return [(os.path.join(output, mask), os.path.join(output, overlay)) for mask, overlay in map(files, names)]


@torch.no_grad()
def predict_paths(
    module,
    meta: dict,
    paths: Sequence[str],
    output: str,
    *,
    alpha: float = 0.5,
    image_scale: str | float | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> list[str]:
    """Segment each image in ``paths``; write the mask and overlay PNGs into ``output``; return mask paths.

    Args:
        module: the trained :class:`SegModule` (its ``forward`` applies the evaluation mode).
        meta: ``mean``, ``std`` and ``palette`` (from :func:`load_module`).
        paths: image files.
        output: folder for the outputs (see :func:`output_paths` for the names and the checks, done before
            anything is written).
        alpha: overlay opacity of the mask colours.
        image_scale: how image values map to ``[0, 1]`` (see ``read_image``); default: ``meta["image_scale"]``
            (the training data's setting), else ``"dtype"``.
        on_error: called with ``(path, error)`` for an image that cannot be read, which is then skipped;
            without it the error is raised.
    """
    from PIL import Image

    from ...utils import atomic_write
    from .data._io import DatasetError, check_image_scale, read_image

    scale = check_image_scale(image_scale if image_scale is not None else meta.get("image_scale") or "dtype")
    targets = output_paths(paths, output)
    os.makedirs(output, exist_ok=True)
    mean = torch.tensor(meta["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32).view(3, 1, 1)
    palette = np.asarray(meta["palette"], dtype=np.uint8)
    flat_palette = palette.reshape(-1).tolist() + [0] * (768 - palette.size)
    device = next(module.parameters()).device
    written = []
    for path, (mask_path, overlay_path) in zip(paths, targets, strict=True):
        try:
            image = read_image(path, scale=scale)
        except (DatasetError, FileNotFoundError) as err:
            if on_error is None:
                raise
            on_error(path, err)
            continue
        unit = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        x = ((unit - mean) / std).unsqueeze(0).to(device)
        pred = module(x).argmax(1)[0].cpu().numpy().astype(np.uint8)
        mask_img = Image.fromarray(pred, mode="P")
        mask_img.putpalette(flat_palette[:768])
        atomic_write(mask_path, functools.partial(mask_img.save, format="PNG"))
        colour = palette[pred].astype(np.float32)
        rgb = unit.permute(1, 2, 0).numpy() * 255.0
        blend = ((1 - alpha) * rgb + alpha * colour).clip(0, 255).round().astype(np.uint8)
        overlay = Image.fromarray(blend)
        atomic_write(overlay_path, functools.partial(overlay.save, format="PNG"))
        written.append(mask_path)
    return written


def main(argv: list[str] | None = None) -> int:
    from ...training.cli import ArgumentParser  # one-line errors, no abbreviated options

    parser = ArgumentParser(prog="hamburger seg predict", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="Lightning checkpoint written by 'hamburger seg fit'")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="folder for the masks and overlays (not the input folder)")
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
    parser.add_argument(
        "--image_scale",
        default=None,
        help="image values to [0, 1]: dtype (by bit depth), minmax (per image) or the largest stored value, "
        "e.g. 4095 (default: the training data's image_scale, else dtype)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument(
        "--model",
        default=None,
        help="the checkpoint's model; needed (and trusted) when it is an import path 'pkg.module:factory'",
    )
    args = parser.parse_args(argv)
    from .inference import check_inference_options

    try:
        image_scale = args.image_scale
        if image_scale is not None and image_scale not in ("dtype", "minmax"):
            try:
                image_scale = float(image_scale)
            except ValueError:
                pass  # check_image_scale names the accepted values
        paths = list_images(args.input)
        output_paths(paths, args.output)  # refuse a bad --output before loading anything
        module, meta = load_module(args.ckpt_path, model=args.model)
        if image_scale is not None:
            from .data._io import check_image_scale

            image_scale = check_image_scale(image_scale, "--image_scale")
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as err:
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
    hp = module.hparams
    try:  # e.g. a stride larger than the crop: one line, before any file is written
        check_inference_options(
            mode=hp.eval_mode, scales=hp.eval_scales, crop_size=hp.eval_crop_size, stride=hp.eval_stride
        )
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    module.to(args.device)
    skipped: list[str] = []

    def report(path: str, err: Exception) -> None:
        skipped.append(path)
        print(f"{parser.prog}: skipped: {str(err).replace(chr(10), ' ')}", file=sys.stderr, flush=True)

    written = predict_paths(
        module, meta, paths, args.output, alpha=args.alpha, image_scale=image_scale, on_error=report
    )
    print(f"wrote {len(written)} masks (+ overlays) to {args.output}")
    if skipped:
        print(f"{parser.prog}: {len(skipped)} of {len(paths)} images could not be read (see above)", file=sys.stderr)
        return 1
    return 0
