"""The embedded backend: jobs as local processes on a virtual cluster (the default).

Kept import-free so that the per-job runner process starts fast.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("EmbeddedBackend", "EmbeddedConfig"):
        from lightgrid.backends.embedded import backend

        return getattr(backend, name)
    raise AttributeError(name)
