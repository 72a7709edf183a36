"""The ``procore`` resource: the OAuth app and hosts, read from the environment at run time."""


from collections import OrderedDict

from dagster import ConfigurableResource

from sync_pipelines.procore import settings
from sync_pipelines.procore.client import ProcoreClient, ProcoreOAuth, RateBudget
from sync_pipelines.procore.connections import ConnectionStore, StoredTokens
from sync_pipelines.redaction import register_secret
from sync_pipelines.secret_box import secret_box_for
from sync_pipelines.warehouse import Warehouse


class ProcoreConfigError(RuntimeError):
    """A required Procore setting is missing (says which variable to set)."""


# One budget per (run, user): the steps of a run share what Procore last said of the window;
# a new run starts from the vendor's next answer. Bounded: a long-lived process forgets old runs.
_run_budgets: OrderedDict[tuple[str, str], RateBudget] = OrderedDict()


def budget_for(run_id: str, user_id: str) -> RateBudget:
    key = (run_id, user_id)
    if key not in _run_budgets:
        _run_budgets[key] = RateBudget(reserve=settings.rate_reserve(), max_wait=settings.rate_max_wait_seconds())
        while len(_run_budgets) > 256:
            _run_budgets.popitem(last=False)
    return _run_budgets[key]


class ProcoreResource(ConfigurableResource):
    """Procore hosts (``PROCORE_API_URL``, ``PROCORE_LOGIN_URL``) and the OAuth app
    (``PROCORE_CLIENT_ID``, ``PROCORE_CLIENT_SECRET``; the secret is never config, so never in the UI)."""

    def missing_settings(self) -> list[str]:
        return [name for name, value in (("PROCORE_CLIENT_ID", settings.client_id()),
                                         ("PROCORE_CLIENT_SECRET", settings.client_secret())) if not value]

    def oauth(self, user_id: str | None = None) -> ProcoreOAuth:
        secret = settings.client_secret()
        register_secret(secret)
        if missing := self.missing_settings():
            raise ProcoreConfigError(f"Procore is not configured: set {', '.join(missing)} (sync_pipelines/procore/README.md)")
        return ProcoreOAuth(settings.login_url(), settings.client_id() or "", secret or "", user_id=user_id)

    def store(self, warehouse: Warehouse) -> ConnectionStore:
        return ConnectionStore(warehouse, secret_box_for(warehouse.url))

    def client(self, warehouse: Warehouse, user_id: str, run_id: str) -> tuple[ProcoreClient, StoredTokens]:
        """A REST client for one connection, whose token refreshes go through the row lock."""
        oauth = self.oauth(user_id)
        tokens = StoredTokens(self.store(warehouse), user_id, oauth.refresh)
        client = ProcoreClient(settings.api_url(), user_id, tokens, per_page=settings.per_page(),
                               budget=budget_for(run_id, user_id))
        return client, tokens
