"""Head registry: a name -> head class table, filled by ``@register_head`` in each head's own file.

Adding a head is one file with a decorated class; :func:`hamburger.models.build_model` passes every model-config
field the class's constructor names (``channels``, ``ham_channels``, ``norm_layer``, ``ham``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

HEADS: dict[str, type[nn.Module]] = {}

H = TypeVar("H", bound=type[nn.Module])


def register_head(name: str) -> Callable[[H], H]:
    """Class decorator: register a head under ``name`` (its constructor takes ``in_channels, num_classes, *, ...``)."""

    def decorate(cls: H) -> H:
        if name in HEADS:
            raise ValueError(f"head {name!r} is already registered ({HEADS[name].__name__})")
        HEADS[name] = cls
        return cls

    return decorate


def get_head(name: str) -> type[nn.Module]:
    """The head class registered under ``name``."""
    if not isinstance(name, str) or name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose from {sorted(HEADS)}")
    return HEADS[name]


def list_heads() -> list[str]:
    return sorted(HEADS)
