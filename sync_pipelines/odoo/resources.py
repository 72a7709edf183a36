"""The ``odoo`` resource: where Odoo is and who we are, read from the environment at run time."""

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.odoo.client import OdooClient
from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import env


class OdooConfigError(RuntimeError):
    """A required Odoo setting is missing (says which variable to set)."""


class OdooResource(ConfigurableResource):
    """Odoo server and credentials: ``ODOO_URL``, ``ODOO_DB``, ``ODOO_USERNAME``, ``ODOO_API_KEY``.

    URL, database and user may be overridden in resource config; the API key may not: it
    is read from ``ODOO_API_KEY`` when a run starts, registered for redaction, and never
    shown in the Dagster UI (resource config is).
    """

    url: str | None = Field(default=None, description="Odoo base URL; default ODOO_URL")
    db: str | None = Field(default=None, description="Odoo database; default ODOO_DB")
    username: str | None = Field(default=None, description="Odoo login; default ODOO_USERNAME")
    protocol: Literal["jsonrpc", "json2"] = Field(
        default="jsonrpc",
        description="jsonrpc (POST /jsonrpc, every version) or json2 (POST /json/2/..., Odoo 19+)",
    )

    def _settings(self) -> dict[str, str | None]:
        return {
            "ODOO_URL": self.url or env("ODOO_URL"),
            "ODOO_DB": self.db or env("ODOO_DB"),
            "ODOO_USERNAME": self.username or env("ODOO_USERNAME"),
            "ODOO_API_KEY": env("ODOO_API_KEY"),
        }

    def missing_settings(self) -> list[str]:
        """The variables still to set; empty when Odoo is configured."""
        return [name for name, value in self._settings().items() if not value]

    def get_client(self) -> OdooClient:
        settings = self._settings()
        api_key = settings["ODOO_API_KEY"]
        register_secret(api_key)
        missing = self.missing_settings()
        if missing:
            raise OdooConfigError(
                f"Odoo is not configured: set {', '.join(missing)} "
                "(see sync_pipelines/odoo/README.md; `python -m sync_pipelines.sandbox` prints sandbox values)"
            )
        return OdooClient(
            url=settings["ODOO_URL"].rstrip("/"),
            db=settings["ODOO_DB"],
            username=settings["ODOO_USERNAME"],
            api_key=api_key,
            protocol=self.protocol,
        )
