"""Dagster resources ``encar`` and ``kbchachacha``: vendor clients built from the environment
when a run starts (``ENCAR_API_URL``, ``KBCHACHACHA_URL``, ``KBCHACHACHA_COOKIE``)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.cars.encar_client import EncarClient
from sync_pipelines.cars.kbchachacha_client import KBChachachaClient
from sync_pipelines.cars.settings import (
    ENCAR,
    ENCAR_DEFAULT_REQUESTS_PER_SECOND,
    ENCAR_DEFAULT_URL,
    ENCAR_PAGE_SIZE,
    KB_DEFAULT_REQUESTS_PER_SECOND,
    KBCHACHACHA,
    KBCHACHACHA_DEFAULT_URL,
    requests_per_second,
)
from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import env, vendor_url


class EncarResource(ConfigurableResource):
    """Encar's public JSON API (no credentials). Base URL from ``ENCAR_API_URL``."""

    base_url: str | None = Field(default=None, description="default: ENCAR_API_URL or https://api.encar.com")
    page_size: int = Field(default=ENCAR_PAGE_SIZE, description="cars per list page (sr=|ModifiedDate|offset|count)")

    def get_client(self) -> EncarClient:
        return EncarClient(
            base_url=(self.base_url or vendor_url("ENCAR_API_URL", ENCAR_DEFAULT_URL)).rstrip("/"),
            page_size=self.page_size,
            requests_per_second=requests_per_second(ENCAR, ENCAR_DEFAULT_REQUESTS_PER_SECOND),
        )


class KBChachachaResource(ConfigurableResource):
    """KB Chachacha's public site. Base URL from ``KBCHACHACHA_URL``; the optional session
    cookie from ``KBCHACHACHA_COOKIE`` (read at run time, never resource config, which the UI
    shows; registered for redaction)."""

    base_url: str | None = Field(default=None, description="default: KBCHACHACHA_URL or https://www.kbchachacha.com")

    def get_client(self) -> KBChachachaClient:
        cookie = env("KBCHACHACHA_COOKIE")
        register_secret(cookie)
        return KBChachachaClient(
            base_url=(self.base_url or vendor_url("KBCHACHACHA_URL", KBCHACHACHA_DEFAULT_URL)).rstrip("/"),
            cookie=cookie,
            requests_per_second=requests_per_second(KBCHACHACHA, KB_DEFAULT_REQUESTS_PER_SECOND),
        )
