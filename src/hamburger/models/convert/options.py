"""Official ham options (``ham_kwargs`` / VOC ``settings.py`` names, or an mmseg config file) -> ``HamOptions``.

Official names (any case; paper-facts 1.7, 5): ``HAM_TYPE -> ham``, ``MD_S -> groups``, ``MD_R -> rank``,
``TRAIN_STEPS -> steps``, ``EVAL_STEPS -> eval_steps``, ``INV_T -> inv_temp`` (VQ / CD; NMF forces 1),
``BETA -> ridge`` (CD), ``ETA -> momentum``, ``RAND_INIT -> init`` (True ``"random"``, False ``"online"``).
``MD_D`` is checked against the weights. The source format fixes what no option names: the gradient
(mmseg / Light-Ham heads run full BPTT, ``no_grad`` being commented out there; the VOC HamNet runs the
one-step gradient) and the default eval steps (VOC ``settings.py`` 6, mmseg 7).
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...blocks import HamOptions

logger = logging.getLogger(__name__)

SOURCES = ("light_ham", "mmseg_ham", "hamnet")
GRAD_MODE = {"light_ham": "bptt", "mmseg_ham": "bptt", "hamnet": "one_step"}
"""The gradient each official implementation computes (paper-facts 1.4)."""
EVAL_STEPS = {"light_ham": 7, "mmseg_ham": 7, "hamnet": 6}
OFFICIAL_KEYS = (
    "ham_type", "md_s", "md_d", "md_r", "train_steps", "eval_steps", "inv_t", "beta", "eta", "rand_init",
    "spatial", "dual", "zero_ham", "cheese_factor",
)  # fmt: skip
_OFFICIAL_INV_T, _OFFICIAL_BETA, _OFFICIAL_ETA = 100.0, 0.1, 0.9
RANK_HINT = "give MD_R: --ham-kwargs '{\"MD_R\": R}' or --mmseg-config CONFIG.py (API: ham_kwargs={'MD_R': R})"


def _lower(ham_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(ham_kwargs or {}).items():
        low = str(key).lower()
        if low not in OFFICIAL_KEYS:
            valid = [k.upper() for k in OFFICIAL_KEYS]
            raise ValueError(f"unknown ham_kwargs key {key!r}; expected (any case) one of {valid}")
        if low in out:
            raise ValueError(f"ham_kwargs gives {low.upper()} twice (keys are case-insensitive)")
        out[low] = value
    return out


def _int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"ham_kwargs {key.upper()} must be an int >= {minimum}, got {value!r}")
    return value


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value:
        raise ValueError(f"ham_kwargs {key.upper()} must be a number, got {value!r}")
    return float(value)


def ham_kwargs_to_options(
    ham_kwargs: Mapping[str, Any] | None, *, source: str = "light_ham", rank: int | None = None
) -> HamOptions:
    """Translate official ``ham_kwargs`` (any case) into a complete :class:`~hamburger.blocks.HamOptions`.

    Args:
        ham_kwargs: official names (see the module docstring); missing ones take the official defaults
            (``MD_S`` 1, ``TRAIN_STEPS`` 6, ``EVAL_STEPS`` 7 (6 for ``hamnet``), ``INV_T`` 100, ``BETA`` 0.1,
            ``ETA`` 0.9, ``RAND_INIT`` True), except ``MD_R``, which is required: official heads use 16 and
            64 (and 512), and the weights do not store it.
        source: ``"light_ham"``, ``"mmseg_ham"`` or ``"hamnet"``; sets ``grad_mode`` (``"bptt"`` for the
            mmseg heads, ``"one_step"`` for the VOC HamNet) and the default eval steps.
        rank: the rank read from the weights (an online dictionary's shape); ``MD_R`` must agree with it.

    ``INV_T`` is ignored for NMF (the official NMF forces 1), ``BETA`` for VQ / NMF; each is logged.
    ``SPATIAL=False`` (channel-wise decomposition) and ``DUAL=True`` are refused: no head here computes them.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    kw = _lower(ham_kwargs)
    ham = str(kw.pop("ham_type", "nmf")).lower()
    if ham not in ("nmf", "vq", "cd"):
        raise ValueError(f"ham_kwargs HAM_TYPE must be 'NMF', 'VQ' or 'CD', got {ham!r}")
    if source != "hamnet" and ham != "nmf":
        raise ValueError(f"HAM_TYPE {ham.upper()!r}: the official mmseg / Light-Ham heads ({source}) are NMF only")
    if kw.pop("dual", False):
        raise ValueError("DUAL (spatial + channel) V2+ checkpoints are not supported by the converter")
    if not kw.pop("spatial", True):
        raise ValueError("SPATIAL=False (channel-wise decomposition) is not supported by the converter")
    if "md_r" in kw:
        given = _int("md_r", kw.pop("md_r"))
        if rank is not None and given != rank:
            raise ValueError(f"ham_kwargs MD_R = {given} but the checkpoint's dictionary has rank {rank}")
        rank = given
    if rank is None:
        raise ValueError(f"the checkpoint does not store the rank (MD_R; official heads use 16 or 64): {RANK_HINT}")
    options: dict[str, Any] = {
        "ham": ham,
        "rank": rank,
        "groups": _int("md_s", kw.pop("md_s", 1)),
        "steps": _int("train_steps", kw.pop("train_steps", 6)),
        "eval_steps": _int("eval_steps", kw.pop("eval_steps", EVAL_STEPS[source])),
        "momentum": _float("eta", kw.pop("eta", _OFFICIAL_ETA)),
        "init": "random" if kw.pop("rand_init", True) else "online",
        "grad_mode": GRAD_MODE[source],
    }
    inv_t = _float("inv_t", kw.pop("inv_t", _OFFICIAL_INV_T))
    if ham == "nmf":
        if inv_t != 1:
            logger.info("ham_kwargs INV_T = %s is ignored: the official NMF forces inv_t = 1", inv_t)
    else:
        options["inv_temp"] = inv_t
    beta = _float("beta", kw.pop("beta", _OFFICIAL_BETA))
    if ham == "cd":
        options["ridge"] = beta
    elif "beta" in {str(k).lower() for k in (ham_kwargs or {})}:
        logger.info("ham_kwargs BETA = %s is ignored: only CD's ridge solve uses it", beta)
    kw.pop("md_d", None)  # checked against the weights by convert_state_dict
    for key, value in kw.items():  # zero_ham, cheese_factor: initialisation / structure read from the weights
        logger.info("ham_kwargs %s = %r is set by the weights' structure; ignored", key.upper(), value)
    return HamOptions(**options)


def md_d(ham_kwargs: Mapping[str, Any] | None) -> int | None:
    """``MD_D`` of ``ham_kwargs`` (any case), or None."""
    value = _lower(ham_kwargs).get("md_d")
    return None if value is None else _int("md_d", value)


# ----------------------------------------------------------------- mmseg config files
@dataclass(frozen=True)
class MmsegConfig:
    """What a decode head's ``dict(...)`` in an mmseg config says: ``ham_kwargs`` and the literal widths."""

    ham_kwargs: dict[str, Any]
    head: dict[str, Any]


_HEAD_KEYS = ("in_channels", "channels", "ham_channels", "num_classes")


def _literal_dict(node: ast.AST, what: str) -> dict[str, Any]:
    """``dict(A=1, ...)`` or ``{'A': 1, ...}`` of literals, evaluated with ``ast.literal_eval`` only."""
    try:
        if isinstance(node, ast.Dict):
            value = ast.literal_eval(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            if node.args or any(k.arg is None for k in node.keywords):
                raise ValueError("positional or ** arguments")
            value = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        else:
            raise ValueError(f"a {type(node).__name__} expression")
    except ValueError as err:
        raise ValueError(f"{what} is not a dict of literals ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a dict")
    return value


def read_mmseg_config(path: str | os.PathLike) -> MmsegConfig:
    """Parse ``ham_kwargs=dict(...)`` (and the head's literal widths) from an mmseg Python config.

    The file is parsed with :mod:`ast` and only literals are evaluated (``ast.literal_eval``): it is never
    executed or imported, and ``_base_`` files are not followed.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"mmseg config {str(file)!r} does not exist")
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (SyntaxError, UnicodeDecodeError) as err:
        raise ValueError(f"mmseg config {str(file)!r} is not a Python file: {err}") from None
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if "ham_kwargs" in keywords:
                call_head: dict[str, Any] = {}
                for key in _HEAD_KEYS:
                    if key in keywords:
                        try:
                            call_head[key] = ast.literal_eval(keywords[key])
                        except ValueError:
                            pass  # a variable: not checked
                found.append((_literal_dict(keywords["ham_kwargs"], f"{file}: ham_kwargs"), call_head))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ham_kwargs" for t in node.targets):
            found.append((_literal_dict(node.value, f"{file}: ham_kwargs"), {}))
    if not found:
        raise ValueError(
            f"mmseg config {str(file)!r} has no ham_kwargs=dict(...) (configs inherited through _base_ are not "
            "followed); pass the options with --ham-kwargs '{\"MD_R\": R, ...}'"
        )
    if any(kw != found[0][0] for kw, _ in found[1:]):
        raise ValueError(f"mmseg config {str(file)!r} has {len(found)} different ham_kwargs; pass --ham-kwargs")
    head: dict[str, Any] = {}
    for _, h in found:
        head.update(h)
    return MmsegConfig(ham_kwargs=found[0][0], head=head)
