"""The code location: everything under ``fairstream_pipeline/defs`` is loaded automatically."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
