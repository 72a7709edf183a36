"""The one code location: every source's assets, jobs, schedules and sensors.

Each source is a subpackage (``sync_pipelines/<source>/``) exporting ``defs``; this module
only merges them with the resources they share. Nothing here touches the network or
reads credentials: resources read the environment when a run starts.
"""

from dagster import Definitions

from sync_pipelines.warehouse import WarehouseResource

shared_defs = Definitions(resources={"warehouse": WarehouseResource()})

# Source subpackages, one line each (sources without an issue are not built yet).
SOURCE_DEFS: list[Definitions] = []

defs = Definitions.merge(shared_defs, *SOURCE_DEFS)
