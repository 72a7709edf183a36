"""sync_pipelines: one Dagster project that keeps business data in sync with SaaS APIs."""
