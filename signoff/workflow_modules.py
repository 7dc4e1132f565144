"""Workflows named by module, as ``signoff serve --workflows a.b,c`` names them.

Modules are looked up as ``python -m`` would: the current folder first, then the
installed packages; a module that is missing or fails to import is one
:class:`WorkflowModuleError` naming it and the cause, not a traceback.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from types import ModuleType

from signoff.domain.errors import InvalidInputError
from signoff.engine import Engine
from signoff.workflow import Workflow


class WorkflowModuleError(InvalidInputError):
    """Raised when a workflows module is missing or raises while it is imported."""

    def __init__(self, module: str, why: str) -> None:
        super().__init__(f"workflows module {module!r} {why}")
        self.module = module


def import_module(name: str) -> ModuleType:
    """Imports ``name`` with the current folder on ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            raise WorkflowModuleError(
                name, f"not found (in {cwd} or the installed packages)"
            ) from None
        raise WorkflowModuleError(name, f"failed to import: {_cause(error)}") from None
    except Exception as error:  # whatever the module raised: the operator sees where
        raise WorkflowModuleError(name, f"failed to import: {_cause(error)}") from None


def _cause(error: BaseException) -> str:
    where, message = "", str(error)
    if isinstance(error, SyntaxError) and error.filename:
        where, message = f" ({error.filename}:{error.lineno})", str(error.msg)
    else:
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if not frame.filename.startswith("<frozen")
        ]
        if frames:
            where = f" ({frames[-1].filename}:{frames[-1].lineno})"
    return f"{type(error).__name__}: {' '.join(message.split())}{where}"


def load_workflows(engine: Engine, modules: str) -> list[str]:
    """Imports each module of the comma-separated list and registers the Workflow
    subclasses it defines; returns their names."""
    names = []
    for module_name in filter(None, (m.strip() for m in modules.split(","))):
        module = import_module(module_name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if not issubclass(value, Workflow) or value.__module__ != module.__name__:
                continue
            name = getattr(value, "name", None)
            if isinstance(name, str) and name:
                engine.register(value)
                names.append(name)
    return names
