"""The code location: everything under ``fairstream_pipeline/defs`` is loaded automatically."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # Every run in one process unless its run config says otherwise: DuckDB already uses every
        # core inside a step, a process per step only adds start-up time, and the month's lock
        # (WarehouseResource) is then held for the whole run, retries and waits included.
        dg.Definitions(executor=dg.in_process_executor),
    )
