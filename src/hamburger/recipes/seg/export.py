"""``hamburger export``: a Lightning checkpoint or a ``save_pretrained`` folder to ONNX or ``torch.export``.

    hamburger export runs/seg/fashion_scenes/checkpoints/last.ckpt --format onnx --output tiny_ham.onnx
    hamburger export my_model/ --format torch_export --output my_model.pt2 --height 512 --width 512 --dynamic

``SRC`` is a checkpoint of ``hamburger seg fit`` (read with ``weights_only=True`` and vetted like ``seg predict``'s,
:func:`hamburger.recipes.seg.predict.load_module`) or a folder written by ``save_pretrained``
(:func:`hamburger.models.from_pretrained`). The graph maps a normalised image batch ``image`` (B, C, H, W) to the
logits ``logits`` (B, num_classes, H, W); the exported file is run on the example input (and, with ``--dynamic``,
on a second size) and compared with the eager model: the largest difference is printed, and one above
``--tolerance`` is an error (nothing written). See :mod:`hamburger.models.export`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["load_source", "main"]


def load_source(src: str, *, model: str | None = None):
    """The ``SegmentationModel`` in ``src`` (a checkpoint file or a ``save_pretrained`` folder), in eval mode,
    and what the user needs to feed it (``mean`` / ``std`` when the checkpoint records them)."""
    if os.path.isdir(src):
        from ...models import from_pretrained

        net = from_pretrained(src)
        return net.eval(), {}
    if not os.path.isfile(src):
        raise FileNotFoundError(f"SRC {src}: no such checkpoint file or save_pretrained folder")
    from .predict import load_module

    module, meta = load_module(src, model=model)
    return module.net.eval(), {"mean": meta.get("mean"), "std": meta.get("std")}


def main(argv: list[str] | None = None) -> int:
    from ...models.export import FORMATS, export_model, set_cd_solve
    from ...training.cli import ArgumentParser  # one-line errors, no abbreviated options

    parser = ArgumentParser(
        prog="hamburger export",
        description="Export a segmentation checkpoint or save_pretrained folder to ONNX or torch.export, checked "
        "against the eager model.",
        epilog="The model does not pad: the export runs at HxW; give --dynamic for other sizes, and pad inputs to "
        "a multiple of the model's output stride for logits aligned with the pixels (docs/models.md, Export).",
    )
    parser.add_argument("src", metavar="SRC", help="a 'hamburger seg fit' checkpoint or a save_pretrained folder")
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx (.onnx) or torch_export (.pt2)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the exported file (written atomically)")
    parser.add_argument("--height", type=int, default=512, help="input height of the export (default 512)")
    parser.add_argument("--width", type=int, default=512, help="input width of the export (default 512)")
    parser.add_argument("--batch_size", type=int, default=1, help="example batch size (default 1; 2 with --dynamic)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch size, height and width")
    parser.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest accepted |exported - eager| logit (default 1e-3)"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--cd_solve", choices=("solve", "newton_schulz"), default=None,
        help="set the CD ham's solve before exporting (ONNX needs newton_schulz, the matmul-only path)",
    )  # fmt: skip
    parser.add_argument("--model", default=None, help="trust this model import path stored in the checkpoint")
    args = parser.parse_args(argv)
    src, output = os.path.abspath(args.src), os.path.abspath(args.output)
    if output == src or output.startswith(src.rstrip(os.sep) + os.sep) and os.path.isdir(src):
        parser.error(f"--output {args.output} would overwrite the input {args.src}; give another file name")
    net, meta = load_source(args.src, model=args.model)
    if args.cd_solve is not None:
        set_cd_solve(net, args.cd_solve)
    try:
        report = export_model(
            net, args.output, format=args.format, height=args.height, width=args.width, batch_size=args.batch_size,
            dynamic=args.dynamic, tolerance=args.tolerance, opset=args.opset,
        )  # fmt: skip
    except ModuleNotFoundError as err:  # onnx / onnxscript missing: say which extra to install
        if (err.name or "").startswith("hamburger"):
            raise
        print(f"hamburger export: error: {err}", file=sys.stderr)
        return 2
    b, c, h, w = report.input_shape
    shape = "(B, C, H, W) dynamic" if report.dynamic else f"({b}, {c}, {h}, {w})"
    print(f"wrote {report.path} ({report.format}; input 'image' {shape}, output 'logits')")
    print(f"max |exported - eager| = {report.max_abs_diff:.3g} (checked with {report.checked_with})")
    if meta.get("mean") and meta.get("std"):
        print(f"inputs: RGB scaled to [0, 1], normalised with mean {meta['mean']} and std {meta['std']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
