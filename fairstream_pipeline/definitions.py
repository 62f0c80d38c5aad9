"""The code location: everything under ``fairstream_pipeline/defs`` is loaded automatically."""

from pathlib import Path

import dagster as dg

from fairstream_pipeline.defs.execution import in_process_or_celery


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # Every run in one process unless its run config chooses Celery (defs/execution.py): DuckDB
        # already uses every core inside a step, and a process per step only adds start-up time.
        dg.Definitions(executor=in_process_or_celery),
    )
