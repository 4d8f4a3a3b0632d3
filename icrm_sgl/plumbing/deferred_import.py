"""A package registered before its ``__init__`` runs: sglang's, when icrm_sgl is imported.

sglang's package ``__init__`` imports torch and transformers for its server runtime (about
8 s of CPU per process on this project's 2-core test machine); the judging programs need
only its frontend language, ``sglang.lang``. icrm_sgl registers the package unexecuted
before anything imports it: its submodules import as usual, and the first name read from
the package itself (``sglang.function``, ``sglang.Engine``, ``sglang.__version__``) runs
the real ``__init__`` then, so code that wants the rest of the package still gets all of it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types

_LOCK = threading.RLock()


class _Unexecuted(types.ModuleType):
    """A package whose ``__init__`` has not run: the first missing name runs it."""

    def __getattr__(self, name: str) -> object:
        with _LOCK:
            if type(self) is _Unexecuted:
                plain: type = types.ModuleType
                self.__class__ = plain
                assert self.__spec__ is not None and self.__spec__.loader is not None
                self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def defer_init(package: str) -> None:
    """Register ``package`` without running its ``__init__`` (unless it is imported already
    or not installed, where the import that needs it says so)."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Unexecuted
    sys.modules[package] = module
