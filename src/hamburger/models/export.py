"""Export a segmentation model to ONNX or ``torch.export`` and check the result against the eager model.

    >>> from hamburger.models import create_model
    >>> from hamburger.models.export import export_model
    >>> report = export_model(create_model("tiny_ham"), "tiny_ham.onnx", format="onnx", height=67, width=53)
    >>> report.max_abs_diff < 1e-3
    True

The exported graph maps a normalised image batch ``image`` ``(B, C, H, W)`` (float32) to the logits ``logits``
``(B, num_classes, H, W)`` (the ``"out"`` of :class:`~hamburger.models.SegmentationModel`, no auxiliary head).
It is traced at one size: without ``dynamic=True`` only that ``B x C x H x W`` runs. The model itself does not
pad, so at sizes that are not a multiple of :attr:`SegmentationModel.output_stride` its logits are interpolated
from a slightly shifted grid (as in eager mode); pad inputs to a multiple of the stride (see
:meth:`SegmentationModel.predict`) when that matters, and export with ``dynamic=True`` to accept other sizes.

The model is exported in eval mode (its ``training`` flag is restored afterwards): the Hamburger solvers run their
``eval_steps`` and skip their input checks while being traced. For ONNX a CD ham needs the matmul-only solve
(``solve="newton_schulz"``): ONNX has no ``linalg.solve``.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from ..utils import atomic_write, check_choice, check_float, check_positive_int

__all__ = ["FORMATS", "ExportReport", "export_model", "set_cd_solve"]

log = logging.getLogger(__name__)

Format = Literal["onnx", "torch_export"]
FORMATS: tuple[Format, ...] = ("onnx", "torch_export")
INPUT_NAME, OUTPUT_NAME = "image", "logits"


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote and how it was checked.

    Attributes:
        path: the exported file.
        format: ``"onnx"`` or ``"torch_export"``.
        input_shape: the example input's shape ``(B, C, H, W)``.
        dynamic: whether batch, height and width are dynamic.
        max_abs_diff: the largest ``|exported - eager|`` over the logits of the checked inputs.
        checked_with: what ran the exported file (``"onnxruntime"``, ``"onnx.reference"`` or
            ``"torch.export"``).
    """

    path: str
    format: str
    input_shape: tuple[int, int, int, int]
    dynamic: bool
    max_abs_diff: float
    checked_with: str


class _Logits(nn.Module):
    """``model(x)["out"]`` as a plain tensor output (the graph's only output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        out = self.model(image)
        return out["out"] if isinstance(out, dict) else out


def set_cd_solve(model: nn.Module, solve: Literal["solve", "newton_schulz"]) -> int:
    """Set ``solve`` of every CD ham in ``model`` (``"newton_schulz"``: the matmul-only path ONNX can export);
    return how many were changed. The weights are unchanged; the two paths agree to float32 rounding."""
    from ..solvers import CD

    solve = check_choice("solve", solve, ("solve", "newton_schulz"))
    changed = 0
    for module in model.modules():
        if isinstance(module, CD) and module.solve != solve:
            module.solve = solve
            changed += 1
    return changed


def _uses_linalg_solve(model: nn.Module) -> bool:
    from ..solvers import CD

    return any(isinstance(m, CD) and getattr(m, "solve", None) == "solve" for m in model.modules())


def _in_channels(model: nn.Module) -> int:
    backbone = getattr(model, "backbone", None)
    return int(getattr(backbone, "in_channels", None) or 3)


def _check_inputs(shape: tuple[int, int, int, int], *, dynamic: bool) -> list[Tensor]:
    """The example input and, with ``dynamic``, a second one of another batch size and image size."""
    gen = torch.Generator().manual_seed(0)
    b, c, h, w = shape
    inputs = [torch.randn(b, c, h, w, generator=gen)]
    if dynamic:
        inputs.append(torch.randn(b + 1, c, h + 5, max(w - 3, 1), generator=gen))
    return inputs


def _max_diff(run: Callable[[Tensor], Tensor], eager: nn.Module, inputs: list[Tensor]) -> float:
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            ref = eager(x)
            got = torch.as_tensor(run(x))
            if tuple(got.shape) != tuple(ref.shape):
                raise ValueError(f"the exported model returned shape {tuple(got.shape)}, eager {tuple(ref.shape)}")
            worst = max(worst, float((got.float() - ref.float()).abs().max()))
    return worst


def _onnx_runner(path: str) -> tuple[Callable[[Tensor], Tensor], str]:
    """A function running the ONNX file: onnxruntime when installed, else onnx's reference evaluator."""
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]), "onnxruntime"
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(path)
    return lambda x: torch.from_numpy(cast(list, evaluator.run(None, {INPUT_NAME: x.numpy()}))[0]), "onnx.reference"


def _export_program(wrapper: nn.Module, example: Tensor, dynamic_shapes) -> torch.export.ExportedProgram:
    return torch.export.export(wrapper, (example,), dynamic_shapes=dynamic_shapes)


def _export_onnx(wrapper: nn.Module, example: Tensor, dynamic_shapes, *, model: nn.Module, opset: int | None):
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    try:
        return torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
            **kwargs,
        )
    except Exception as err:  # the exporter raises its own error types; explain the one case we know
        text = str(err)
        if _uses_linalg_solve(model) or "linalg_solve" in text:
            raise ValueError(
                "ONNX export failed: the model's CD ham uses torch.linalg.solve, which ONNX has no operator for; "
                "use CD's matmul-only solve: hamburger export --cd_solve newton_schulz (in Python "
                "set_cd_solve(model, 'newton_schulz'), or build the model with solve='newton_schulz'), or export "
                "--format torch_export"
            ) from err
        raise


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    format: Literal["onnx", "torch_export"] = "onnx",
    height: int = 512,
    width: int = 512,
    batch_size: int = 1,
    dynamic: bool = False,
    tolerance: float = 1e-3,
    opset: int | None = None,
) -> ExportReport:
    """Export ``model`` (logits of a ``(B, C, H, W)`` image batch) to ``path`` and check it against eager.

    Args:
        model: a :class:`~hamburger.models.SegmentationModel` (or any module returning ``{"out": logits}`` or a
            tensor). It is put in eval mode for the export; its ``training`` flag is restored afterwards.
        path: the output file (``.onnx`` / ``.pt2``), written atomically (a failed export leaves no file and an
            existing one untouched).
        format: ``"onnx"`` (``torch.onnx.export(dynamo=True)``) or ``"torch_export"`` (``torch.export.save``; load
            it with ``torch.export.load(path).module()``).
        height, width: the example input's size (any size; not padded, see the module docstring).
        batch_size: the example input's batch size (with ``dynamic`` at least 2: a batch of 1 would be fixed).
        dynamic: batch, height and width are dynamic dimensions; the check also runs a second input of another
            size.
        tolerance: the largest ``|exported - eager|`` logit difference accepted.
        opset: ONNX opset version (default: the exporter's).

    Returns:
        An :class:`ExportReport` with the measured ``max_abs_diff``.

    Raises:
        ValueError: a bad option, an export that fails for a known reason (CD's ``linalg.solve`` in ONNX), or
            outputs that differ from eager by more than ``tolerance`` (nothing is written then).
        ModuleNotFoundError: ``format="onnx"`` without the ``onnx`` / ``onnxscript`` packages
            (``pip install 'hamburger[export]'``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    format = check_choice("format", format, FORMATS)
    height, width = check_positive_int("height", height), check_positive_int("width", width)
    batch_size = check_positive_int("batch_size", batch_size)
    tolerance = check_float("tolerance", tolerance, low=0.0)
    if not isinstance(dynamic, bool):
        raise TypeError(f"dynamic must be a bool, got {type(dynamic).__name__}")
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"output {str(target)!r} is a folder, expected a file name")
    if format == "onnx":
        for package in ("onnx", "onnxscript"):
            if importlib.util.find_spec(package) is None:
                raise ModuleNotFoundError(
                    f"ONNX export needs the package {package!r} (pip install 'hamburger[export]')", name=package
                )
    if dynamic:
        batch_size = max(batch_size, 2)
    shape = (batch_size, _in_channels(model), height, width)
    inputs = _check_inputs(shape, dynamic=dynamic)
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim.DYNAMIC
        dynamic_shapes = {INPUT_NAME: {0: dim, 2: dim, 3: dim}}
    was_training = model.training
    wrapper = _Logits(model).eval()
    try:
        with torch.no_grad():
            if format == "torch_export":
                program = _export_program(wrapper, inputs[0], dynamic_shapes)
                diff = _max_diff(program.module(), wrapper, inputs)
                checked_with = "torch.export"
                _check_tolerance(diff, tolerance)
                buffer = io.BytesIO()  # torch.export.save wants a .pt2 name; the temporary file has another
                torch.export.save(program, buffer)
                atomic_write(target, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
            else:
                onnx_program = _export_onnx(wrapper, inputs[0], dynamic_shapes, model=model, opset=opset)
                diff, checked_with = _write_checked_onnx(onnx_program, target, wrapper, inputs, tolerance)
    finally:
        model.train(was_training)
    report = ExportReport(os.fspath(target), format, shape, dynamic, diff, checked_with)
    log.info("exported %s to %s (max |exported - eager| = %.3g, %s)", format, target, diff, checked_with)
    return report


def _check_tolerance(diff: float, tolerance: float) -> None:
    if not diff <= tolerance:  # also catches NaN
        raise ValueError(
            f"the exported model's logits differ from the eager model's by up to {diff:.3g} (tolerance "
            f"{tolerance:g}); nothing was written (a random eval_init or a data-dependent branch can cause this)"
        )


def _write_checked_onnx(onnx_program, target: Path, wrapper: nn.Module, inputs: list[Tensor], tolerance: float):
    """Save to a temporary file, check it (``onnx.checker`` and a run against eager), then rename into place."""
    import onnx

    result: dict[str, object] = {}

    def write(tmp: str) -> None:
        onnx_program.save(tmp)
        onnx.checker.check_model(tmp, full_check=True)
        run, result["checked_with"] = _onnx_runner(tmp)
        diff = _max_diff(run, wrapper, inputs)
        result["diff"] = diff
        _check_tolerance(diff, tolerance)  # raising here removes the temporary file

    atomic_write(target, write)
    return float(cast(float, result["diff"])), str(result["checked_with"])
