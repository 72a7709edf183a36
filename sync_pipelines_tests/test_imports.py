"""Every module of the product imports: a rename in one module cannot leave another broken
until a test happens to import it (migrations and ``__main__`` entry points aside)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import sync_pipelines

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sync_pipelines.__path__, prefix="sync_pipelines.")
    if ".migrations" not in info.name and not info.name.endswith("__main__")
)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(module):
    importlib.import_module(module)
