"""Sandboxed vendors: each module defines ``VENDOR`` (a SandboxVendor subclass).

Modules are discovered by :func:`sync_pipelines.sandbox.core.discover_vendor_classes`, so
adding a vendor is adding a module here; nothing else needs to change.
"""
