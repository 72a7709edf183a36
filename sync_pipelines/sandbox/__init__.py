"""Local stand-ins for the vendor APIs: ``python -m sync_pipelines.sandbox`` or :class:`Sandbox`."""

from sync_pipelines.sandbox.core import (
    Fault,
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    SandboxVendor,
    html_response,
    json_response,
    route,
)

__all__ = [
    "Fault",
    "Sandbox",
    "SandboxClock",
    "SandboxRequest",
    "SandboxResponse",
    "SandboxVendor",
    "html_response",
    "json_response",
    "route",
]
