"""The one partitioning of the project: closed UTC months from the first month, keyed ``YYYY-MM``.

Assets and checks are declared with ``monthly_partitions``, which starts at the settings' default
first month: importing a module reads no setting. When the code location loads, the loader
(``definitions.py``) moves every monthly asset (``spec_on``) and check (``checks_on``) to the
partitions that start at ``FAIRSTREAM_FIRST_MONTH``; jobs and the schedule take theirs from their
assets. Code that runs in a step reads ``lib.months.first_month()``; the landing sensor asks
``partitions_from_settings()``.
"""

import dagster as dg

from fairstream_pipeline.lib.months import first_month
from fairstream_pipeline.settings import Settings

DEFAULT_FIRST_MONTH: str = Settings.model_fields["first_month"].default


def monthly_partitions_from(first: str) -> dg.MonthlyPartitionsDefinition:
    """Closed UTC months from ``first`` (``YYYY-MM``): the current month appears on the 1st of the next."""
    return dg.MonthlyPartitionsDefinition(start_date=first, fmt="%Y-%m", timezone="UTC", end_offset=0)


monthly_partitions = monthly_partitions_from(DEFAULT_FIRST_MONTH)


def partitions_from_settings() -> dg.MonthlyPartitionsDefinition:
    """The monthly partitions as the settings have them now."""
    return monthly_partitions_from(first_month())


def spec_on(spec: dg.AssetSpec, partitions: dg.MonthlyPartitionsDefinition) -> dg.AssetSpec:
    """``spec`` on ``partitions`` if it was declared on ``monthly_partitions``."""
    if spec.partitions_def != monthly_partitions:
        return spec
    return spec.replace_attributes(partitions_def=partitions)


def checks_on(checks: dg.AssetChecksDefinition, partitions: dg.MonthlyPartitionsDefinition) -> dg.AssetChecksDefinition:
    """The same checks on ``partitions`` where they were declared on ``monthly_partitions``
    (``dg.map_asset_specs`` does not reach checks; ``AssetChecksDefinition.create`` is how Dagster
    documents building them)."""
    specs = checks.check_specs_by_output_name
    if all(spec.partitions_def != monthly_partitions for spec in specs.values()):
        return checks
    return dg.AssetChecksDefinition.create(
        keys_by_input_name=checks.node_keys_by_input_name,
        node_def=checks.node_def,
        check_specs_by_output_name={
            # _replace: the NamedTuple copy with one field changed that AssetCheckSpec keeps (and,
            # unlike its constructor, it does not warn that partitioned checks are a Preview feature)
            name: spec._replace(partitions_def=partitions) if spec.partitions_def == monthly_partitions else spec
            for name, spec in specs.items()
        },
        can_subset=checks.can_subset,
        resource_defs=checks.resource_defs,
    )
