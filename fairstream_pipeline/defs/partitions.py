"""The one partitioning of the project: closed UTC months, keyed ``YYYY-MM``."""

import dagster as dg

from fairstream_pipeline.lib.months import first_month

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=first_month(),
    fmt="%Y-%m",
    timezone="UTC",
    end_offset=0,  # only closed months: the current month appears on the 1st of the next
)
