"""The optional C accelerators of the hot path (built by ``setup.py`` when a compiler is there).

``load(name)`` gives the extension module, or None when it was not built or when the
environment sets ``SFLOWLAB_PURE_PYTHON=1``; its users then run their pure-Python code, which
gives the same results (the tests run both).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_ENV = "SFLOWLAB_PURE_PYTHON"


def load(name: str) -> ModuleType | None:
    """The accelerator module ``name`` (e.g. ``sflowlab.codec._walk``), or None."""
    if os.environ.get(PURE_ENV) == "1":
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


MODULES = ("sflowlab.codec._walk", "sflowlab.collector._seq", "sflowlab.collector._rates",
           "sflowlab.collector._recv", "sflowlab.collector._metrics")
"""Every accelerator setup.py builds."""


def active() -> list[str]:
    """The accelerators in use (short names, e.g. ``_walk``)."""
    return [name.rsplit(".", 1)[1] for name in MODULES if load(name) is not None]
