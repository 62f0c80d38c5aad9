"""The code location: everything under ``fairstream_pipeline/defs`` is loaded automatically."""

import warnings
from pathlib import Path

import dagster as dg

from fairstream_pipeline.defs.execution import in_process_or_celery


@dg.definitions
def defs() -> dg.Definitions:
    # Dagster 1.13 re-creates every sensor that targets a job with ``owners=[]`` when it resolves
    # the repository, which warns that ``owners`` is in beta at every sensor tick; none of our
    # sensors sets ``owners``, so the warning says nothing and only floods the daemon's log.
    warnings.filterwarnings(
        "ignore", message="Parameter `owners` of initializer `SensorDefinition.__init__`", category=dg.BetaWarning
    )
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # Every run in one process unless its run config chooses Celery (defs/execution.py): DuckDB
        # already uses every core inside a step, and a process per step only adds start-up time.
        dg.Definitions(executor=in_process_or_celery),
    )
