"""``hamburger seg predict``: segment an image file or a folder of images with a trained model.

The model is a Lightning checkpoint of ``hamburger seg fit`` (``--ckpt_path FILE``: class names, palette and
normalisation come from the checkpoint) or a ``save_pretrained`` folder (``--model_dir DIR``, read with
:func:`hamburger.models.from_pretrained`; it holds no data settings, so ImageNet statistics, the VOC palette and
class names ``0 .. K-1`` are used unless the folder has a ``seg_meta.json``, see :func:`read_seg_meta`).
Images of the same size are segmented in batches of ``--batch_size`` (every forward pass sees images of one
size, so a prediction is the one the image would get alone); ``--device auto`` uses CUDA when available.

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
from typing import cast

import numpy as np
import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "SEG_META_NAME",
    "PretrainedPredictor",
    "default_palette",
    "list_images",
    "load_model",
    "load_module",
    "load_pretrained",
    "main",
    "output_paths",
    "predict_paths",
    "read_seg_meta",
    "resolve_device",
    "size_batches",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SEG_META_NAME = "seg_meta.json"
"""Optional file of a ``save_pretrained`` folder with the data settings predict needs (:func:`read_seg_meta`)."""


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


def default_palette(k: int) -> list[list[int]]:
    """The first ``k`` colours of :data:`hamburger.utils.VOC_PALETTE`: class 0 (background) black, 1 dark red."""
    from ...utils import VOC_PALETTE

    return [list(colour) for colour in VOC_PALETTE[:k]]


def _made_up_palette(palette: Sequence[Sequence[int]], k: int) -> bool:
    """Whether ``palette`` is the one a dataset without colours of its own makes up (the VOC map without its
    black: class 0 dark red), which predict replaces by :func:`default_palette`."""
    from ...utils import VOC_PALETTE

    return [list(map(int, c)) for c in palette[:k]] == [list(c) for c in VOC_PALETTE[1 : k + 1]]


def _complete_meta(meta: dict, k: int) -> dict:
    """Fill the defaults of ``meta`` for a ``k``-class model: VOC palette, names ``0 .. k-1``, ImageNet stats."""
    from ...utils import IMAGENET_MEAN, IMAGENET_STD

    if not meta.get("palette") or len(meta["palette"]) < k:
        meta["palette"] = default_palette(k)
    if not meta.get("class_names") or len(meta["class_names"]) != k:
        meta["class_names"] = [str(i) for i in range(k)]
    meta["mean"] = list(meta.get("mean") or IMAGENET_MEAN)
    meta["std"] = list(meta.get("std") or IMAGENET_STD)
    meta["image_scale"] = meta.get("image_scale") or "dtype"
    return meta


def load_module(ckpt_path: str, *, map_location: str | torch.device = "cpu", model: str | None = None):
    """Rebuild the :class:`SegModule` saved in a Lightning checkpoint (``weights_only`` load).

    The checkpoint's hyper-parameters are vetted by :func:`~hamburger.recipes.seg.module.checkpoint_hparams`:
    a model import path stored in the checkpoint is refused unless ``model`` (what the user typed) names it.

    Returns:
        ``(module, meta)`` with ``meta`` holding ``class_names``, ``palette``, ``mean``, ``std`` and
        ``image_scale``. The palette is the dataset's; one the dataset made up (a ``folder`` dataset without
        ``palette=``: class 0 dark red) is replaced by :func:`default_palette` (class 0 black).
    """
    from ...training.hparams import read_checkpoint
    from .module import SegModule, checkpoint_hparams

    if os.path.isdir(ckpt_path):
        hint = " (a save_pretrained folder: use --model_dir)" if _is_pretrained_dir(ckpt_path) else ""
        raise ValueError(f"--ckpt_path {ckpt_path} is a folder, expected a Lightning checkpoint file{hint}")
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
    meta["mean"] = meta.get("mean") or data_hp.get("mean")
    meta["std"] = meta.get("std") or data_hp.get("std")
    data_kwargs = {**(data_hp.get("dataset_kwargs") or {}), **(data_hp.get("val_kwargs") or {})}
    meta["image_scale"] = meta.get("image_scale") or data_kwargs.get("image_scale")
    if meta.get("palette") and _made_up_palette(meta["palette"], hparams["num_classes"]):
        meta["palette"] = None  # the dataset had no colours: use the VOC palette, background black
    return module, _complete_meta(meta, hparams["num_classes"])


class PretrainedPredictor(torch.nn.Module):
    """A ``save_pretrained`` model with the recipe's inference (:func:`~.inference.infer`), as ``SegModule``.

    ``forward`` returns logits ``(B, K, H, W)`` at the input size with the options in ``hparams``
    (``eval_mode``, ``eval_scales``, ``eval_flip``, ``eval_crop_size``, ``eval_stride``; default one padded
    single-scale pass), so :func:`predict_paths` treats it like a checkpoint's module.
    """

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        from lightning.pytorch.utilities.parsing import AttributeDict

        self.net = net
        self.hparams = AttributeDict(
            eval_mode="single", eval_scales=(1.0,), eval_flip=False, eval_crop_size=None, eval_stride=None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from .inference import infer

        hp = self.hparams
        return infer(
            self.net, images, mode=hp.eval_mode, scales=hp.eval_scales, flip=hp.eval_flip,
            crop_size=hp.eval_crop_size, stride=hp.eval_stride,
        )  # fmt: skip


def _is_pretrained_dir(path: str) -> bool:
    from ...models.hub import CONFIG_NAME, WEIGHTS_NAME

    return os.path.isfile(os.path.join(path, CONFIG_NAME)) and os.path.isfile(os.path.join(path, WEIGHTS_NAME))


def _number_list(value: object, *, length: int | None, name: str, low: float, high: float) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        size = f"{length} " if length is not None else ""
        raise ValueError(f"{name} must be a list of {size}numbers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise ValueError(f"{name} must hold numbers in [{low:g}, {high:g}], got {value!r}")
    return value


def read_seg_meta(directory: str, num_classes: int) -> dict:
    """The data settings of a ``save_pretrained`` folder: its ``seg_meta.json`` if present, else ``{}``.

    The file is plain JSON (nothing in it is imported or called) with any of the keys of a checkpoint's
    ``seg_meta``: ``class_names`` (``K`` strings), ``palette`` (``K`` RGB triples 0-255), ``mean`` and ``std``
    (3 floats, RGB in ``[0, 1]``) and ``image_scale`` (``"dtype"``, ``"minmax"`` or a number). A missing key
    takes its default (class names ``0 .. K-1``, :func:`default_palette`, ImageNet statistics, ``"dtype"``).

    Raises:
        ValueError: the file is not a JSON object, has an unknown key, or a value of the wrong type or size.
    """
    import json

    path = os.path.join(directory, SEG_META_NAME)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    known = ("class_names", "palette", "mean", "std", "image_scale")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; expected some of {list(known)}")
    k = num_classes
    names = raw.get("class_names")
    if names is not None and (
        not isinstance(names, list) or len(names) != k or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"{path}: class_names must be a list of {k} strings (the model has {k} classes), got {names!r}"
        )
    palette = raw.get("palette")
    if palette is not None:
        if not isinstance(palette, list) or len(palette) != k:
            raise ValueError(f"{path}: palette must be a list of {k} RGB triples, got {palette!r}")
        for colour in palette:
            _number_list(colour, length=3, name=f"{path}: palette colour", low=0, high=255)
    for key in ("mean", "std"):
        if raw.get(key) is not None:
            _number_list(raw[key], length=3, name=f"{path}: {key}", low=0.0 if key == "mean" else 1e-12, high=1.0)
    if raw.get("image_scale") is not None:
        from .data._io import check_image_scale

        raw["image_scale"] = check_image_scale(raw["image_scale"], f"{path}: image_scale")
    return {key: value for key, value in raw.items() if value is not None}


def load_pretrained(directory: str, *, map_location: str | torch.device = "cpu") -> tuple[PretrainedPredictor, dict]:
    """A ``save_pretrained`` folder as ``(predictor, meta)``, like :func:`load_module` for a checkpoint.

    The weights are read with :func:`hamburger.models.from_pretrained` (safetensors + JSON config: nothing is
    imported or called). ``meta`` comes from :func:`read_seg_meta`, with ImageNet statistics, the VOC palette
    (:func:`default_palette`) and class names ``0 .. K-1`` for what the folder does not say.
    """
    from ...models import from_pretrained

    if not os.path.isdir(directory):
        kind = "a file (a Lightning checkpoint? use --ckpt_path)" if os.path.isfile(directory) else "not found"
        raise FileNotFoundError(f"--model_dir {directory}: {kind}; expected a folder written by save_pretrained")
    if not _is_pretrained_dir(directory):
        raise ValueError(f"--model_dir {directory} has no config.json + model.safetensors (written by save_pretrained)")
    net = from_pretrained(directory)
    k = int(net.config["num_classes"]) if net.config else None
    if k is None:
        raise ValueError(f"--model_dir {directory}: its config names no num_classes")
    meta = _complete_meta(read_seg_meta(directory, k), k)
    return PretrainedPredictor(net).to(map_location).eval(), meta


def load_model(
    *,
    ckpt_path: str | None = None,
    model_dir: str | None = None,
    model: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """:func:`load_module` for ``ckpt_path`` or :func:`load_pretrained` for ``model_dir`` (give exactly one)."""
    if (ckpt_path is None) == (model_dir is None):
        raise ValueError("give exactly one of --ckpt_path (Lightning checkpoint) and --model_dir (save_pretrained)")
    if model_dir is not None:
        if model is not None:
            raise ValueError("--model applies to --ckpt_path only; a --model_dir folder names its model itself")
        return load_pretrained(model_dir, map_location=map_location)
    assert ckpt_path is not None
    return load_module(ckpt_path, map_location=map_location, model=model)


def resolve_device(name: str) -> torch.device:
    """``"auto"``: ``cuda`` when available, else ``cpu``; any other name must be a device this machine has.

    Raises:
        ValueError: ``name`` is not a device name, or names one that is not available here (e.g. ``cuda`` on
            a machine without a CUDA GPU, ``cuda:3`` with two GPUs).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})")
        return device
    if device.type == "cpu":
        return device
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"--device {name} is not available on this machine ({err}); use --device cpu or auto") from err
    return device


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


def _image_size(path: str) -> tuple[int, int] | None:
    """``(height, width)`` from the file's header (nothing decoded), or ``None`` when Pillow cannot open it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - read_image reports the error (one line) when the image is read
        return None


def size_batches(paths: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of ``paths`` in batches of at most ``batch_size`` images of one size (header read only).

    Batches follow the first appearance of each size; an image whose header cannot be read is a batch of its
    own (its error is reported when it is read).
    """
    from ...utils import check_positive_int

    check_positive_int("batch_size", batch_size)
    groups: dict[object, list[int]] = {}
    for i, path in enumerate(paths):
        size = _image_size(path)
        groups.setdefault(size if size is not None else ("unreadable", i), []).append(i)
    return [group[j : j + batch_size] for group in groups.values() for j in range(0, len(group), batch_size)]


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
    batch_size: int = 1,
) -> list[str]:
    """Segment each image in ``paths``; write the mask and overlay PNGs into ``output``; return mask paths.

    Images of the same height and width are stacked into batches of up to ``batch_size`` (never padded to a
    common size: the global context of a Hamburger would then see the padding), so each prediction is the one
    the image gets alone. The module runs on the device its parameters are on.

    Args:
        module: the trained :class:`SegModule` or a :class:`PretrainedPredictor` (their ``forward`` applies
            the inference mode and returns logits at the input size).
        meta: ``mean``, ``std`` and ``palette`` (from :func:`load_module` / :func:`load_pretrained`).
        paths: image files.
        output: folder for the outputs (see :func:`output_paths` for the names and the checks, done before
            anything is written).
        alpha: overlay opacity of the mask colours.
        image_scale: how image values map to ``[0, 1]`` (see ``read_image``); default: ``meta["image_scale"]``
            (the training data's setting), else ``"dtype"``.
        on_error: called with ``(path, error)`` for an image that cannot be read, which is then skipped;
            without it the error is raised.
        batch_size: most images per forward pass.

    Returns:
        The mask files written, in the order of ``paths``.
    """
    from PIL import Image

    from ...utils import atomic_write
    from .data._io import DatasetError, check_image_scale, read_image

    scale = check_image_scale(image_scale if image_scale is not None else meta.get("image_scale") or "dtype")
    batches = size_batches(paths, batch_size)
    targets = output_paths(paths, output)
    os.makedirs(output, exist_ok=True)
    device = next(module.parameters()).device
    mean = torch.tensor(meta["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
    palette = np.asarray(meta["palette"], dtype=np.uint8)
    flat_palette = palette.reshape(-1).tolist() + [0] * (768 - palette.size)
    written: dict[int, str] = {}
    for batch in batches:
        units: list[torch.Tensor] = []
        indices: list[int] = []
        for i in batch:
            try:
                image = read_image(paths[i], scale=scale)
            except (DatasetError, FileNotFoundError) as err:
                if on_error is None:
                    raise
                on_error(paths[i], err)
                continue
            units.append(image.float() / 255.0 if image.dtype == torch.uint8 else image.float())
            indices.append(i)
        if not units:
            continue
        x = (torch.stack(units).to(device) - mean) / std
        preds = module(x).argmax(1).to(torch.uint8).cpu().numpy()
        for i, unit, pred in zip(indices, units, preds, strict=True):
            mask_path, overlay_path = targets[i]
            mask_img = Image.fromarray(pred, mode="P")
            mask_img.putpalette(flat_palette[:768])
            atomic_write(mask_path, functools.partial(mask_img.save, format="PNG"))
            colour = palette[pred].astype(np.float32)
            rgb = unit.permute(1, 2, 0).numpy() * 255.0
            blend = ((1 - alpha) * rgb + alpha * colour).clip(0, 255).round().astype(np.uint8)
            overlay = Image.fromarray(blend)
            atomic_write(overlay_path, functools.partial(overlay.save, format="PNG"))
            written[i] = mask_path
    return [written[i] for i in sorted(written)]


def main(argv: list[str] | None = None) -> int:
    from ...training.cli import ArgumentParser  # one-line errors, no abbreviated options

    parser = ArgumentParser(prog="hamburger seg predict", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", help="Lightning checkpoint file written by 'hamburger seg fit'")
    source.add_argument(
        "--model_dir",
        help="folder written by save_pretrained (config.json + model.safetensors, optional seg_meta.json)",
    )
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="folder for the masks and overlays (not the input folder)")
    parser.add_argument(
        "--mode",
        choices=("single", "multiscale", "slide"),
        default=None,
        help="inference mode (default: the checkpoint's eval_mode; single for --model_dir)",
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
    parser.add_argument("--batch_size", type=int, default=1, help="images of one size per forward pass")
    parser.add_argument(
        "--device", default="auto", help="torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="the checkpoint's model; needed (and trusted) when it is an import path 'pkg.module:factory'",
    )
    args = parser.parse_args(argv)
    from ...utils import check_positive_int
    from .inference import check_inference_options

    try:
        image_scale = args.image_scale
        if image_scale is not None and image_scale not in ("dtype", "minmax"):
            try:
                image_scale = float(image_scale)
            except ValueError:
                pass  # check_image_scale names the accepted values
        check_positive_int("--batch_size", args.batch_size)
        device = resolve_device(args.device)
        paths = list_images(args.input)
        output_paths(paths, args.output)  # refuse a bad --output before loading anything
        module, meta = load_model(ckpt_path=args.ckpt_path, model_dir=args.model_dir, model=args.model)
        if image_scale is not None:
            from .data._io import check_image_scale

            image_scale = check_image_scale(image_scale, "--image_scale")
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as err:
        parser.error(str(err))
    from lightning.fabric.utilities.data import AttributeDict

    hparams = cast(AttributeDict, module.hparams)  # SegModule's or the predictor's: a mutable attribute dict
    for key, value in (
        ("eval_mode", args.mode),
        ("eval_scales", args.scales),
        ("eval_flip", args.flip),
        ("eval_crop_size", args.crop_size),
        ("eval_stride", args.stride),
    ):
        if value is not None:
            hparams[key] = value
    hp = hparams
    try:  # e.g. a stride larger than the crop: one line, before any file is written
        check_inference_options(
            mode=hp.eval_mode, scales=hp.eval_scales, crop_size=hp.eval_crop_size, stride=hp.eval_stride
        )
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    module.to(device)
    log.info("predicting on %s in batches of up to %d images of one size", device, args.batch_size)
    skipped: list[str] = []

    def report(path: str, err: Exception) -> None:
        skipped.append(path)
        print(f"{parser.prog}: skipped: {str(err).replace(chr(10), ' ')}", file=sys.stderr, flush=True)

    written = predict_paths(
        module, meta, paths, args.output, alpha=args.alpha, image_scale=image_scale, on_error=report,
        batch_size=args.batch_size,
    )  # fmt: skip
    print(f"wrote {len(written)} masks (+ overlays) to {args.output}")
    if skipped:
        print(f"{parser.prog}: {len(skipped)} of {len(paths)} images could not be read (see above)", file=sys.stderr)
        return 1
    return 0
