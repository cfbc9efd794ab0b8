"""Convert official Light-Ham / SegNeXt / HamNet checkpoints to this library's heads.

Source formats (detected from the keys, or given with ``source=``):

* ``"light_ham"``: mmseg ``LightHamHead`` (Enjoy-Hamburger ``seg_light_ham``, SegNeXt, mmseg 0.x
  and 1.x): ``decode_head.{squeeze, hamburger.ham_in, hamburger.ham_out, align, conv_seg}``.
* ``"mmseg_ham"``: mmseg ``HamHead`` (``seg_mm``): ``decode_head.{squeeze, ham_in, ham_out, align,
  conv_cat, conv_seg}``, ``auxiliary_head`` (FCNHead) and a ResNetV1c ``backbone``.
* ``"hamnet"``: the official VOC HamNet (``seg/HamNet``): ``backbone.{0..7}``, ``squeeze``,
  ``hamburger`` (V1, V2 or V2+), ``align``, ``fc.1``.

Weights carry no solver options; give the official ``ham_kwargs`` (upper- or lower-case keys,
``MD_R`` / ``md_r``, ``TRAIN_STEPS`` / ``train_steps`` ...) to reproduce them. Source keys that
are not mapped are reported in :attr:`Conversion.unmatched`.

    hamburger convert CKPT OUT_DIR [--ham-kwargs '{"MD_R": 16}'] [--in-channels 64,160,256]
                                   [--model hamnet_resnet101 [--set KEY=JSON ...]]

Without ``--model`` the CLI writes ``converted.safetensors`` (keys ``head.*``, ``aux_head.*``,
``backbone.body.*``) and ``conversion.json`` (head class, options, unmatched keys); with it, the
registered model is built with the checkpoint's head options, loaded (missing keys are an
error) and written by ``save_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

logger = logging.getLogger(__name__)

SOURCES = ("light_ham", "mmseg_ham", "hamnet")
_HAM_KWARGS = {
    "md_s": "groups",
    "md_r": "rank",
    "train_steps": "steps",
    "eval_steps": "eval_steps",
    "rand_init": "init",
}
_IGNORED_KWARGS = {"md_d", "inv_t", "eta", "spatial", "zero_ham", "dual", "beta"}
_NORM = {"gn": "group", "bn": "batch"}


def ham_kwargs_to_options(ham_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Translate official ``ham_kwargs`` (any case) into typed head options.

    ``MD_S -> groups``, ``MD_R -> rank``, ``TRAIN_STEPS -> steps``, ``EVAL_STEPS -> eval_steps``,
    ``RAND_INIT -> init`` (``True`` -> ``"random"``, ``False`` -> ``"online"``), ``HAM_TYPE -> ham``. ``MD_D`` is
    checked against the weights by the caller; ``INV_T`` (forced to 1 for NMF), ``ETA`` and
    ``SPATIAL`` are accepted and ignored. Defaults are the official ones (1, 64, 6, 7, True).
    """
    options: dict[str, Any] = {"ham": "nmf", "groups": 1, "rank": 64, "steps": 6, "eval_steps": 7, "init": "random"}
    for key, value in dict(ham_kwargs or {}).items():
        low = str(key).lower()
        if low == "dual" and value:
            raise ValueError("DUAL (spatial + channel) V2+ checkpoints are not supported by the converter")
        if low == "ham_type":
            options["ham"] = str(value).lower()
        elif low in _HAM_KWARGS:
            name = _HAM_KWARGS[low]
            options[name] = ("random" if value else "online") if name == "init" else int(value)
        elif low in _IGNORED_KWARGS:
            logger.info("ham_kwargs[%r] = %r has no effect on the converted NMF head", key, value)
        else:
            valid = sorted(k.upper() for k in (*_HAM_KWARGS, *_IGNORED_KWARGS))
            raise ValueError(f"unknown ham_kwargs key {key!r}; expected (any case) one of {valid}")
    return options


@dataclass
class Conversion:
    """Result of :func:`convert_state_dict`.

    Attributes:
        source: the detected source format.
        state_dict: converted tensors, keyed like a :class:`SegmentationModel`
            (``head.*``, ``aux_head.*``, ``backbone.body.*`` in timm layout).
        head: ``"ham"`` or ``"light_ham"``; ``head_kwargs`` its constructor options.
        aux_kwargs: FCNHead options when the checkpoint has an auxiliary head, else None.
        unmatched: source keys that were not converted (e.g. a non-timm backbone).
    """

    source: str
    state_dict: dict[str, Tensor]
    head: str
    head_kwargs: dict[str, Any]
    aux_kwargs: dict[str, Any] | None = None
    unmatched: list[str] = field(default_factory=list)

    def part(self, prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) :]: v for k, v in self.state_dict.items() if k.startswith(prefix)}

    def build_head(self) -> nn.Module:
        """Our head with the converted weights loaded strictly."""
        from ..heads import HamHead, LightHamHead

        cls = HamHead if self.head == "ham" else LightHamHead
        head = cls(**self.head_kwargs)
        _load_part(head, self.part("head."), "head")
        return head

    def build_aux_head(self) -> nn.Module | None:
        from ..heads import FCNHead

        if self.aux_kwargs is None:
            return None
        aux = FCNHead(**self.aux_kwargs)
        _load_part(aux, self.part("aux_head."), "aux_head")
        return aux

    def report(self) -> str:
        lines = [f"source format: {self.source}", f"converted tensors: {len(self.state_dict)}"]
        lines.append(f"unmatched source keys: {len(self.unmatched)}")
        lines += [f"  {k}" for k in self.unmatched[:50]]
        if len(self.unmatched) > 50:
            lines.append(f"  ... and {len(self.unmatched) - 50} more")
        return "\n".join(lines)


def _load_part(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"converted {what} lacks {missing[:8]}; the checkpoint does not match the inferred structure")
    module.load_state_dict({**own, **state}, strict=True)


def _strip(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    state = dict(state)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), Mapping):
            state = dict(state[wrapper])
    if state and all(k.startswith("module.") for k in state):
        state = {k[7:]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def detect_source(state: Mapping[str, Tensor]) -> str:
    """``"light_ham"``, ``"mmseg_ham"`` or ``"hamnet"`` from the key names."""
    keys = set(state)
    if any(k.endswith("hamburger.ham_in.conv.weight") for k in keys):
        return "light_ham"
    if any(k.endswith("ham_in.conv.weight") for k in keys):
        return "mmseg_ham"
    if any(re.match(r"(module\.)?hamburger\.lower_bread\.", k) for k in keys):
        return "hamnet"
    raise ValueError("cannot detect the checkpoint format: no LightHamHead, mmseg HamHead or HamNet keys found")


def _conv_module(src: str, dst: str, state: Mapping[str, Tensor], out: dict[str, Tensor], used: set[str]) -> str | None:
    """mmcv ``ConvModule`` (``conv``, ``gn``/``bn``) -> our ``ConvNormAct`` (``0``, ``1``); returns the norm kind."""
    norm = None
    for key, value in state.items():
        if not key.startswith(src + "."):
            continue
        rest = key[len(src) + 1 :]
        part, _, tail = rest.partition(".")
        if part == "conv":
            out[f"{dst}.0.{tail}"] = value
        elif part in _NORM:
            out[f"{dst}.1.{tail}"] = value
            norm = _NORM[part]
        else:
            continue
        used.add(key)
    return norm


def _rename(src: str, dst: str, state: Mapping[str, Tensor], out: dict[str, Tensor], used: set[str]) -> None:
    for key, value in state.items():
        if key == src or key.startswith(src + "."):
            out[dst + key[len(src) :]] = value
            used.add(key)


_V1C_STEM = {
    "stem.0.": "conv1.0.",
    "stem.1.": "conv1.1.",
    "stem.3.": "conv1.3.",
    "stem.4.": "conv1.4.",
    "stem.6.": "conv1.6.",
    "stem.7.": "bn1.",
}


def _mmseg_backbone(state: Mapping[str, Tensor], out: dict[str, Tensor], used: set[str]) -> None:
    """mmseg ResNetV1c (``backbone.stem.*``, ``backbone.layerN``) -> timm ``resnet*c``; others stay unmatched."""
    if "backbone.stem.0.weight" not in state:
        return
    for key, value in state.items():
        if not key.startswith("backbone."):
            continue
        rest = key[len("backbone.") :]
        prefix = next((p for p in _V1C_STEM if rest.startswith(p)), None)
        if prefix is not None:
            rest = _V1C_STEM[prefix] + rest[len(prefix) :]
        elif not rest.startswith("layer"):
            continue
        out[f"backbone.body.{rest}"] = value
        used.add(key)


def _hamnet_backbone(state: Mapping[str, Tensor], out: dict[str, Tensor], used: set[str]) -> None:
    """Official VOC ``backbone = Sequential(conv1, bn1, relu, maxpool, layer1..4)`` -> timm ``resnet*s``."""
    names = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
    for key, value in state.items():
        m = re.match(r"backbone\.(\d+)\.(.+)", key)
        if m and m.group(1) in names:
            out[f"backbone.body.{names[m.group(1)]}.{m.group(2)}"] = value
            used.add(key)


def convert_state_dict(
    state_dict: Mapping[str, Tensor],
    *,
    source: str = "auto",
    ham_kwargs: Mapping[str, Any] | None = None,
    in_channels: Sequence[int] | None = None,
) -> Conversion:
    """Map an official checkpoint's state_dict onto our modules.

    Args:
        state_dict: the checkpoint (``{"state_dict": ...}`` wrappers and ``module.`` prefixes are removed).
        source: ``"auto"`` or one of ``"light_ham"``, ``"mmseg_ham"``, ``"hamnet"``.
        ham_kwargs: the official ``ham_kwargs`` / settings (any case), see :func:`ham_kwargs_to_options`.
        in_channels: channels of the backbone levels the head reads (a LightHamHead only stores
            their sum; default one level of that width).
    """
    state = _strip(state_dict)
    source = detect_source(state) if source == "auto" else source
    if source not in SOURCES:
        raise ValueError(f"source must be 'auto' or one of {list(SOURCES)}, got {source!r}")
    options = ham_kwargs_to_options(ham_kwargs)
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    if source == "hamnet":
        head, head_kwargs, aux_kwargs = _convert_hamnet(state, out, used, options)
    else:
        head, head_kwargs, aux_kwargs = _convert_mmseg(state, out, used, options, source, in_channels)
    if "md_d" in {str(k).lower() for k in (ham_kwargs or {})}:
        md_d = int(next(v for k, v in ham_kwargs.items() if str(k).lower() == "md_d")) * options["groups"]
        if md_d != head_kwargs["ham_channels"]:
            raise ValueError(
                f"ham_kwargs MD_D x MD_S = {md_d} but the weights have {head_kwargs['ham_channels']} ham channels"
            )
    unmatched = sorted(k for k in state if k not in used)
    for key in unmatched:
        logger.warning("unmatched source key: %s", key)
    return Conversion(source, out, head, head_kwargs, aux_kwargs, unmatched)


def _convert_mmseg(state, out, used, options, source, in_channels):
    p = "decode_head."
    if not any(k.startswith(p) for k in state):
        p = ""  # a bare head state_dict
    ham = f"{p}hamburger." if source == "light_ham" else p
    norm = _conv_module(f"{p}squeeze", "head.squeeze", state, out, used)
    _conv_module(f"{p}align", "head.align", state, out, used)
    concat = _conv_module(f"{p}conv_cat", "head.conv_cat", state, out, used) is not None
    _rename(f"{ham}ham_in.conv", "head.context.lower_bread", state, out, used)
    _rename(f"{ham}ham_out.conv", "head.context.upper_bread", state, out, used)
    for kind in _NORM:
        _rename(f"{ham}ham_out.{kind}", "head.context.upper_norm", state, out, used)
    _rename(f"{ham}ham.bases", "head.context.ham.bases", state, out, used)
    _rename(f"{p}conv_seg", "head.classifier", state, out, used)
    if "head.squeeze.0.weight" not in out or "head.classifier.weight" not in out:
        raise ValueError(f"no {p or 'head '}squeeze / conv_seg weights found for source {source!r}")
    if "head.context.ham.bases" in out:
        options = {**options, "init": "online"}
    squeeze = out["head.squeeze.0.weight"]
    ham_channels, c_in = squeeze.shape[:2]
    common = dict(
        num_classes=out["head.classifier.weight"].shape[0], channels=out["head.align.0.weight"].shape[0],
        ham_channels=ham_channels, norm_layer=norm or "batch", grad_mode="bptt", **options,
    )  # fmt: skip
    if source == "light_ham":
        levels = list(in_channels) if in_channels is not None else [c_in]
        if sum(levels) != c_in:
            raise ValueError(f"in_channels {levels} sum to {sum(levels)}, but the squeeze conv takes {c_in} channels")
        head, kwargs = "light_ham", dict(in_channels=levels, **common)
    else:
        head, kwargs = "ham", dict(in_channels=[c_in], kernel_size=squeeze.shape[-1], concat_input=concat, **common)
    aux_kwargs = None
    a = "auxiliary_head."
    if any(k.startswith(a) for k in state):
        n = 0
        while _conv_module(f"{a}convs.{n}", f"aux_head.convs.{n}", state, out, used) is not None:
            n += 1
        aux_concat = _conv_module(f"{a}conv_cat", "aux_head.conv_cat", state, out, used) is not None
        _rename(f"{a}conv_seg", "aux_head.classifier", state, out, used)
        if n:
            first = out["aux_head.convs.0.0.weight"]
            aux_norm = "group" if f"{a}convs.0.gn.weight" in state else "batch"
            aux_kwargs = dict(
                in_channels=[first.shape[1]], num_classes=kwargs["num_classes"], channels=first.shape[0], num_convs=n,
                kernel_size=first.shape[-1], concat_input=aux_concat, norm_layer=aux_norm,
            )  # fmt: skip
    _mmseg_backbone(state, out, used)
    return head, kwargs, aux_kwargs


def _convert_hamnet(state, out, used, options):
    norm = _conv_module("squeeze", "head.squeeze", state, out, used)
    _conv_module("align", "head.align", state, out, used)
    nmf = "hamburger.lower_bread.0.weight" in state
    _rename("hamburger.lower_bread.0" if nmf else "hamburger.lower_bread", "head.context.lower_bread", state, out, used)
    if "hamburger.cheese.conv.weight" in state:
        version = "v2+" if "hamburger.coef_ham" in state else "v2"
        _conv_module("hamburger.cheese", "head.context.cheese", state, out, used)
        _rename("hamburger.upper_bread", "head.context.upper_bread", state, out, used)
        _rename("hamburger.coef_ham", "head.context.coef_ham", state, out, used)
        _rename("hamburger.coef_shortcut", "head.context.coef_shortcut", state, out, used)
    else:
        version = "v1"
        _rename("hamburger.upper_bread.0", "head.context.upper_bread", state, out, used)
        _rename("hamburger.upper_bread.1", "head.context.upper_norm", state, out, used)
    if any(k.startswith(("hamburger.ham_1.", "hamburger.ham_2.")) for k in state):
        raise ValueError("DUAL (spatial + channel) V2+ checkpoints are not supported by the converter")
    _rename("hamburger.ham.bases", "head.context.ham.bases", state, out, used)
    if "head.context.ham.bases" in out:
        options = {**options, "init": "online"}
    _rename("fc.1", "head.classifier", state, out, used)
    if "head.squeeze.0.weight" not in out or "head.classifier.weight" not in out:
        raise ValueError("no squeeze / fc.1 weights found for source 'hamnet'")
    _hamnet_backbone(state, out, used)
    squeeze = out["head.squeeze.0.weight"]
    kwargs = dict(
        in_channels=[squeeze.shape[1]], num_classes=out["head.classifier.weight"].shape[0],
        channels=out["head.align.0.weight"].shape[0], ham_channels=squeeze.shape[0], kernel_size=squeeze.shape[-1],
        norm_layer=norm or "batch", version=version, grad_mode="one_step", **options,
    )  # fmt: skip
    if nmf != (options["ham"] == "nmf"):
        raise ValueError(
            f"the checkpoint's lower bread {'has' if nmf else 'has no'} the NMF ReLU but HAM_TYPE is "
            f'{options["ham"].upper()!r}; give --ham-kwargs \'{{"HAM_TYPE": "VQ"}}\' (or CD) for VQ / CD checkpoints'
        )
    return "ham", kwargs, None


def main(argv: list[str] | None = None) -> int:
    """``hamburger convert``: convert a checkpoint and write our files to OUT_DIR."""
    parser = argparse.ArgumentParser(prog="hamburger convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="official checkpoint (.pth) or state_dict file")
    parser.add_argument("out_dir", help="output directory")
    parser.add_argument("--source", default="auto", choices=("auto", *SOURCES))
    parser.add_argument("--ham-kwargs", default="{}", help="official ham_kwargs as JSON, e.g. '{\"MD_R\": 16}'")
    parser.add_argument("--in-channels", default=None, help="comma-separated channels of the head's input levels")
    parser.add_argument("--model", default=None, help="registered model to load everything into (save_pretrained)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="extra --model option, e.g. output_stride=16"
    )
    args = parser.parse_args(argv)
    from .weights import read_state_dict

    try:
        ham_kwargs = json.loads(args.ham_kwargs)
        in_channels = None if args.in_channels is None else [int(c) for c in args.in_channels.split(",")]
        conversion = convert_state_dict(
            read_state_dict(args.checkpoint), source=args.source, ham_kwargs=ham_kwargs, in_channels=in_channels
        )
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set expects KEY=JSON, got {item!r}")
            overrides[key] = json.loads(value)
        _write(conversion, args.out_dir, args.model, overrides)
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as err:
        print(f"hamburger convert: error: {err}")
        return 2
    print(conversion.report())
    print(f"written to {args.out_dir}")
    return 0


def _write(conversion: Conversion, out_dir: str, model_name: str | None, overrides: dict[str, Any]) -> None:
    from pathlib import Path

    from safetensors.torch import save_file

    from ..utils import atomic_write as _atomic_write

    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    if model_name is not None:
        from ..blocks import HamOptions
        from .registry import create_model

        # the head's widths and norm, and every ham option the checkpoint determines (type, grad mode, rank, ...)
        shared = ("num_classes", "channels", "ham_channels", "norm_layer", *HamOptions.field_names())
        kwargs = {k: conversion.head_kwargs[k] for k in shared if k in conversion.head_kwargs}
        model = create_model(model_name, **{**kwargs, **overrides})
        result = model.load_state_dict(conversion.state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise ValueError(f"{model_name}: missing {missing[:8]} unexpected {result.unexpected_keys[:8]}")
        model.save_pretrained(path)
        return
    tensors = {k: v.contiguous() for k, v in conversion.state_dict.items()}
    _atomic_write(path / "converted.safetensors", lambda tmp: save_file(tensors, tmp))
    meta = {k: getattr(conversion, k) for k in ("source", "head", "head_kwargs", "aux_kwargs", "unmatched")}
    _atomic_write(path / "conversion.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
