"""Official key names -> this library's modules, per source format, with the tensors validated.

Source formats (detected from the keys, or given with ``source=``):

* ``"light_ham"``: mmseg ``LightHamHead`` (Enjoy-Hamburger ``seg_light_ham``, SegNeXt, mmseg 0.x
  and 1.x): ``decode_head.{squeeze, hamburger.ham_in, hamburger.ham_out, align, conv_seg}``.
* ``"mmseg_ham"``: mmseg ``HamHead`` (``seg_mm``): ``decode_head.{squeeze, ham_in, ham_out, align,
  conv_cat, conv_seg}``, ``auxiliary_head`` (FCNHead) and a ResNetV1c ``backbone``.
* ``"hamnet"``: the official VOC HamNet (``seg/HamNet``): ``backbone.{0..7}``, ``squeeze``,
  ``hamburger`` (V1, V2 or V2+), ``align``, ``fc.1``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ...blocks import HamOptions
from .options import SOURCES, ham_kwargs_to_options, md_d
from .read import unwrap

logger = logging.getLogger(__name__)

_NORM = {"gn": "group", "bn": "batch"}
_NORM_PARAMS = {"gn": ("weight", "bias"), "bn": ("weight", "bias", "running_mean", "running_var")}


@dataclass
class Conversion:
    """Result of :func:`convert_state_dict`.

    Attributes:
        source: the detected source format.
        state_dict: converted tensors, keyed like a :class:`SegmentationModel`
            (``head.*``, ``aux_head.*``, ``backbone.body.*`` in timm layout).
        head: ``"ham"`` or ``"light_ham"``; ``head_kwargs`` its constructor options other than the ham's
            (widths, norm, kernel size, ``concat_input``).
        options: the complete :class:`~hamburger.blocks.HamOptions` of the checkpoint's Hamburger (ham type,
            rank, steps, gradient, temperature, ...), passed to the head as ``ham=``.
        aux_kwargs: FCNHead options when the checkpoint has an auxiliary head, else None.
        unmatched: source keys that were not converted (e.g. a non-timm backbone).
    """

    source: str
    state_dict: dict[str, Tensor]
    head: str
    head_kwargs: dict[str, Any]
    options: HamOptions = field(default_factory=HamOptions)
    aux_kwargs: dict[str, Any] | None = None
    unmatched: list[str] = field(default_factory=list)

    def part(self, prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) :]: v for k, v in self.state_dict.items() if k.startswith(prefix)}

    def build_head(self) -> nn.Module:
        """Our head with the converted weights loaded strictly."""
        from ...heads import HamHead, LightHamHead

        cls = HamHead if self.head == "ham" else LightHamHead
        head = cls(**self.head_kwargs, ham=self.options)
        _load_part(head, self.part("head."), "head")
        return head

    def build_aux_head(self) -> nn.Module | None:
        from ...heads import FCNHead

        if self.aux_kwargs is None:
            return None
        aux = FCNHead(**self.aux_kwargs)
        _load_part(aux, self.part("aux_head."), "aux_head")
        return aux

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``conversion.json``): source, head, head options, ham options, unmatched keys."""
        return {
            "source": self.source, "head": self.head, "head_kwargs": self.head_kwargs,
            "hamburger": self.options.to_dict(), "aux_kwargs": self.aux_kwargs, "unmatched": self.unmatched,
        }  # fmt: skip

    def report(self) -> str:
        opts = self.options
        lines = [f"source format: {self.source}", f"converted tensors: {len(self.state_dict)}"]
        lines.append(
            f"ham: {opts.ham} rank={opts.rank} steps={opts.steps}/{opts.eval_steps} groups={opts.groups} "
            f"grad_mode={opts.grad_mode} init={opts.init} version={opts.version}"
            + (f" inv_temp={opts.inv_temp}" if opts.inv_temp is not None else "")
            + (f" ridge={opts.ridge}" if opts.ridge is not None else "")
        )
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
    unexpected = [k for k in state if k not in own]
    shapes = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own}
    wrong = [f"{k}: {a} vs {b}" for k, (a, b) in shapes.items() if a != b]
    if unexpected or wrong:
        raise ValueError(
            f"converted {what} does not fit: unexpected {unexpected[:8]}, shapes (checkpoint vs head) {wrong[:8]}"
        )
    module.load_state_dict({**own, **state}, strict=True)


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
            norm = part
        else:
            continue
        used.add(key)
    if norm is not None:
        _check_norm(src, norm, state)
    return None if norm is None else _NORM[norm]


def _check_norm(src: str, norm: str, state: Mapping[str, Tensor]) -> None:
    absent = [f"{src}.{norm}.{p}" for p in _NORM_PARAMS[norm] if f"{src}.{norm}.{p}" not in state]
    if absent:
        raise ValueError(f"the checkpoint's {src} norm lacks {absent}")


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


def _conv_weight(out: Mapping[str, Tensor], key: str, what: str) -> Tensor:
    weight = out[key]
    if weight.dim() != 4 or min(weight.shape) < 1:
        shape = tuple(weight.shape)
        raise ValueError(f"the checkpoint's {what} weight has shape {shape}; expected (out>0, in>0, k, k)")
    return weight


def _check_finite(out: Mapping[str, Tensor]) -> None:
    bad = [k for k, v in out.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"the checkpoint has non-finite (NaN / inf) values in {len(bad)} tensor(s), e.g. {bad[:5]}")


def _dictionary_rank(out: Mapping[str, Tensor], ham_channels: int) -> tuple[int | None, int | None]:
    """(rank, groups) of a stored (S, D, R) online dictionary, or (None, None)."""
    bases = out.get("head.context.ham.bases")
    if bases is None:
        return None, None
    if bases.dim() != 3 or bases.shape[0] * bases.shape[1] != ham_channels or bases.shape[2] < 1:
        raise ValueError(f"the stored dictionary has shape {tuple(bases.shape)}; expected (S, {ham_channels} / S, R)")
    return int(bases.shape[2]), int(bases.shape[0])


def _ham_options(
    ham_kwargs: Mapping[str, Any] | None, source: str, out: Mapping[str, Tensor], ham_channels: int
) -> HamOptions:
    rank, groups = _dictionary_rank(out, ham_channels)
    options = ham_kwargs_to_options(ham_kwargs, source=source, rank=rank)
    if groups is not None:
        if options.groups != groups:
            raise ValueError(f"ham_kwargs MD_S = {options.groups} but the stored dictionary has {groups} groups")
        if options.init == "random":
            logger.info("the checkpoint stores an online dictionary: init='online' (RAND_INIT=False)")
        options = options.replace(init="online")
    depth = md_d(ham_kwargs)
    if depth is not None and depth * options.groups != ham_channels:
        raise ValueError(
            f"ham_kwargs MD_D x MD_S = {depth * options.groups} but the weights have {ham_channels} ham channels"
        )
    return options


def convert_state_dict(
    state_dict: Mapping[str, Any],
    *,
    source: str = "auto",
    ham_kwargs: Mapping[str, Any] | None = None,
    in_channels: Sequence[int] | None = None,
) -> Conversion:
    """Map an official checkpoint's state_dict onto our modules.

    Args:
        state_dict: the checkpoint (``{"state_dict": ...}`` / ``{"net": ...}`` wrappers and ``module.``
            prefixes are removed).
        source: ``"auto"`` or one of ``"light_ham"``, ``"mmseg_ham"``, ``"hamnet"``.
        ham_kwargs: the official ``ham_kwargs`` / settings (any case), see :func:`ham_kwargs_to_options`;
            ``MD_R`` is required unless the checkpoint stores an online dictionary.
        in_channels: channels of the backbone levels the head reads (a LightHamHead only stores
            their sum; default one level of that width).

    The converted head (and auxiliary head) is built and loaded strictly, so a checkpoint that does
    not fit (missing norm weights, wrong shapes, empty channels, NaN / inf values) is a ``ValueError``.
    """
    state = unwrap(state_dict)
    source = detect_source(state) if source == "auto" else source
    if source not in SOURCES:
        raise ValueError(f"source must be 'auto' or one of {list(SOURCES)}, got {source!r}")
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    if source == "hamnet":
        head, head_kwargs, options, aux_kwargs = _convert_hamnet(state, out, used, ham_kwargs)
    else:
        head, head_kwargs, options, aux_kwargs = _convert_mmseg(state, out, used, ham_kwargs, source, in_channels)
    _check_finite(out)
    unmatched = sorted(k for k in state if k not in used)
    if unmatched:
        logger.info("%d source keys not converted, e.g. %s", len(unmatched), unmatched[:3])
    conversion = Conversion(source, out, head, head_kwargs, options, aux_kwargs, unmatched)
    conversion.build_head()  # validates every head tensor's presence and shape
    conversion.build_aux_head()
    return conversion


def _convert_mmseg(state, out, used, ham_kwargs, source, in_channels):
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
        if any(k.startswith(f"{ham}ham_out.{kind}.") for k in state):
            _check_norm(f"{ham}ham_out", kind, state)
        _rename(f"{ham}ham_out.{kind}", "head.context.upper_norm", state, out, used)
    _rename(f"{ham}ham.bases", "head.context.ham.bases", state, out, used)
    _rename(f"{p}conv_seg", "head.classifier", state, out, used)
    for key, what in (("head.squeeze.0.weight", "squeeze"), ("head.classifier.weight", "conv_seg")):
        if key not in out:
            raise ValueError(f"no {p}{what} weights found for source {source!r}")
    if "head.align.0.weight" not in out:
        raise ValueError(f"no {p}align weights found for source {source!r}")
    squeeze = _conv_weight(out, "head.squeeze.0.weight", f"{p}squeeze")
    align = _conv_weight(out, "head.align.0.weight", f"{p}align")
    classes = _conv_weight(out, "head.classifier.weight", f"{p}conv_seg")
    ham_channels, c_in = squeeze.shape[:2]
    options = _ham_options(ham_kwargs, source, out, ham_channels)
    common = dict(
        num_classes=classes.shape[0], channels=align.shape[0], ham_channels=ham_channels, norm_layer=norm or "batch",
    )  # fmt: skip
    if source == "light_ham":
        levels = list(in_channels) if in_channels is not None else [c_in]
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in levels):
            raise ValueError(f"in_channels must be positive ints, got {levels}")
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
            first = _conv_weight(out, "aux_head.convs.0.0.weight", f"{a}convs.0")
            aux_norm = "group" if f"{a}convs.0.gn.weight" in state else "batch"
            aux_kwargs = dict(
                in_channels=[first.shape[1]], num_classes=kwargs["num_classes"], channels=first.shape[0], num_convs=n,
                kernel_size=first.shape[-1], concat_input=aux_concat, norm_layer=aux_norm,
            )  # fmt: skip
    _mmseg_backbone(state, out, used)
    return head, kwargs, options, aux_kwargs


def _convert_hamnet(state, out, used, ham_kwargs):
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
    _rename("fc.1", "head.classifier", state, out, used)
    if "head.squeeze.0.weight" not in out or "head.classifier.weight" not in out or "head.align.0.weight" not in out:
        raise ValueError("no squeeze / align / fc.1 weights found for source 'hamnet'")
    _hamnet_backbone(state, out, used)
    squeeze = _conv_weight(out, "head.squeeze.0.weight", "squeeze")
    align = _conv_weight(out, "head.align.0.weight", "align")
    classes = _conv_weight(out, "head.classifier.weight", "fc.1")
    options = _ham_options(ham_kwargs, "hamnet", out, squeeze.shape[0]).replace(version=version)
    kwargs = dict(
        in_channels=[squeeze.shape[1]], num_classes=classes.shape[0], channels=align.shape[0],
        ham_channels=squeeze.shape[0], kernel_size=squeeze.shape[-1], norm_layer=norm or "batch",
    )  # fmt: skip
    if nmf != (options.ham == "nmf"):
        raise ValueError(
            f"the checkpoint's lower bread {'has' if nmf else 'has no'} the NMF ReLU but HAM_TYPE is "
            f'{options.ham.upper()!r}; give --ham-kwargs \'{{"HAM_TYPE": "VQ"}}\' (or CD) for VQ / CD checkpoints'
        )
    return "ham", kwargs, options, None
