"""Reading official checkpoints safely: tensors out, nothing imported or called.

Two readers, tried in order:

1. ``torch.load(weights_only=True)`` with a small allow-list of harmless globals: numpy's scalar
   reconstruction (``numpy.core.multiarray.scalar``, ``numpy.dtype`` and the dtype classes) for the
   official VOC HamNet files (``{"net": state_dict, "step": int, "best_mIoU": numpy scalar}``).
2. For torch zip files that still hold other objects (mmseg 1.x / mmengine ``Runner`` checkpoints:
   ``message_hub``, ``meta``, ``param_schedulers`` with mmengine classes), a restricted unpickler:
   tensors and a few builtin containers are rebuilt; every other global becomes an inert stub class
   that swallows its arguments and state. Nothing is imported and no ``__reduce__`` of an unknown
   class is executed, so a pickle that would call ``os.system`` only builds a stub.

``weights_only`` is never turned off.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

WRAPPERS = ("state_dict", "model", "net", "module", "model_state")
"""Keys under which checkpoints nest their state_dict (mmseg/mmengine, timm, the VOC HamNet ``train.py``)."""


# ----------------------------------------------------------------- 1. weights_only with numpy scalars
def _numpy_globals() -> list[Any]:
    """numpy scalar / dtype reconstruction, under the names numpy 1.x and 2.x write (empty without numpy)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with torch's usual installs
        return []
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((scalar, f"{module}.scalar"))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: dtype instances are of per-type classes
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dtypes.__all__ if isinstance(getattr(dtypes, n), type)]
    return allowed


def _load_weights_only(file: Path) -> Any:
    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(file, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------- 2. restricted unpickler
class InertObject:
    """Stands for an object of a global outside the allow-list: keeps no state and calls nothing."""

    global_name: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: only their dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


_STORAGE_TYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}  # fmt: skip


class _Storage:
    def __init__(self, untyped: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.untyped, self.dtype = untyped, dtype


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple, stride: tuple, requires_grad: bool = False, *_: Any
) -> Tensor:
    """``torch._utils._rebuild_tensor_v2`` without backward hooks or metadata (a view of the read bytes)."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage record")
    return torch.empty((0,), dtype=storage.dtype).set_(storage.untyped, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Tensor, requires_grad: bool = False, *_: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError("parameter without tensor data")
    return data


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes (latin-1 only)."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return text.encode("latin1")


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles torch's ``data.pkl`` with the allow-list above; every other global is an inert stub class."""

    def __init__(self, file: io.BytesIO, records: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.records, self.prefix = records, prefix
        self.stubbed: set[str] = set()
        self._stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_TYPES:
            return _StorageType(_STORAGE_TYPES[name])
        full = f"{module}.{name}"
        self.stubbed.add(full)
        if full not in self._stubs:
            self._stubs[full] = type(name, (InertObject,), {"global_name": full, "__module__": __name__})
        return self._stubs[full]

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, _numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("storage of an unknown type")
        data = bytearray(self.records.read(f"{self.prefix}data/{key}"))
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
        return _Storage(untyped, storage_type.dtype)


def _load_restricted(file: Path) -> tuple[Any, set[str]]:
    if not zipfile.is_zipfile(file):
        raise ValueError("not a torch zip checkpoint, and it holds objects torch's weights_only reader refuses")
    with zipfile.ZipFile(file) as records:
        names = [n for n in records.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(names) != 1:
            raise ValueError("no data.pkl record in the zip file")
        prefix = names[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in records.namelist() and records.read(order).strip() != b"little":
            raise ValueError("big-endian checkpoints are not supported")
        unpickler = RestrictedUnpickler(io.BytesIO(records.read(names[0])), records, prefix)
        return unpickler.load(), unpickler.stubbed


# ----------------------------------------------------------------- public
def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The flat state_dict of an official checkpoint (``.pth``/``.pt``/``.bin``/``.ckpt`` or ``.safetensors``).

    Unwraps ``state_dict`` / ``model`` / ``net`` containers, strips a DataParallel ``module.`` prefix
    and drops non-tensor entries. Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    (naming the file) for one that cannot be read safely.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {str(file)!r} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(file))
        else:
            try:
                obj = _load_weights_only(file)
            except pickle.UnpicklingError as first:
                try:
                    obj, stubbed = _load_restricted(file)
                except Exception as err:
                    said = str(first).splitlines()[-1]
                    raise ValueError(f"{err}; torch.load(weights_only=True) said: {said}") from None
                if stubbed:
                    logger.warning(
                        "%s: ignored objects of %d type(s) not needed for the weights (never imported): %s",
                        file, len(stubbed), ", ".join(sorted(stubbed)[:10]),
                    )  # fmt: skip
    except ValueError as err:
        raise ValueError(f"cannot read checkpoint {str(file)!r}: {err}") from None
    except Exception as err:  # corrupt archive, truncated file, ...
        raise ValueError(f"cannot read checkpoint {str(file)!r}: {type(err).__name__}: {err}") from None
    state = unwrap(obj)
    if not state:
        raise ValueError(f"checkpoint {str(file)!r} holds no tensors")
    return state


def unwrap(obj: Any) -> dict[str, Tensor]:
    """The tensors of ``obj`` after removing ``{"state_dict": ...}``-style wrappers and ``module.`` prefixes."""
    state = obj
    while isinstance(state, Mapping):
        inner = [k for k in WRAPPERS if isinstance(state.get(k), Mapping)]
        if not inner:
            break
        state = state[inner[0]]
    if not isinstance(state, Mapping):
        return {}
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors
