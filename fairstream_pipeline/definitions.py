"""The code location, and the one way definitions are registered.

Every asset, check, job, sensor and schedule defined at the top level of a module under
``fairstream_pipeline/defs`` is loaded by ``dg.load_from_defs_folder``: defining it there is what
registers it (``test_layout`` checks that nothing under ``defs/`` escapes). What needs a setting
to be built is built here, when the code location loads, never when a module is imported: the
resources, the two sensors whose interval or channels are settings, the monthly partitions from
the first month, and the publication's automation without an app database.
"""

import warnings
from pathlib import Path

import dagster as dg

from fairstream_pipeline.defs.alerting.failure_alerts import payout_failure_alert
from fairstream_pipeline.defs.alerting.resources import alerts_from_env
from fairstream_pipeline.defs.execution import in_process_or_celery
from fairstream_pipeline.defs.ingestion.sensors import landing_zone_sensor
from fairstream_pipeline.defs.notifications.assets import publishing_condition
from fairstream_pipeline.defs.notifications.resources import smtp_from_env
from fairstream_pipeline.defs.partitions import checks_on, partitions_from_settings, spec_on
from fairstream_pipeline.defs.payments.resources import payments_from_env
from fairstream_pipeline.defs.resources import default_resources
from fairstream_pipeline.settings import get_settings


def resources_from_settings() -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location, configured from the settings as they are now."""
    return {
        **default_resources(),
        "smtp": smtp_from_env(),
        "alerts": alerts_from_env(),
        "payments": payments_from_env(),
    }


def settings_applied(loaded: dg.Definitions) -> dg.Definitions:
    """The defs folder's definitions with what the settings decide now: the monthly assets and checks
    on the partitions from ``FAIRSTREAM_FIRST_MONTH``, and no automatic publication without an app
    database."""
    partitions = partitions_from_settings()
    database_configured = bool(get_settings().database_url.get_secret_value())
    unchanged = ("jobs", "schedules", "sensors", "resources", "executor", "loggers", "metadata", "component_tree")
    return dg.Definitions(
        assets=dg.map_asset_specs(
            lambda spec: publishing_condition(spec_on(spec, partitions), database_configured), loaded.assets or []
        ),
        asset_checks=[checks_on(checks, partitions) for checks in loaded.asset_checks or []],
        **{name: getattr(loaded, name) for name in unchanged},
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Dagster 1.13 re-creates every sensor that targets a job with ``owners=[]`` when it resolves
    # the repository, which warns that ``owners`` is in beta at every sensor tick; none of our
    # sensors sets ``owners``, so the warning says nothing and only floods the daemon's log.
    warnings.filterwarnings(
        "ignore", message="Parameter `owners` of initializer `SensorDefinition.__init__`", category=dg.BetaWarning
    )
    return dg.Definitions.merge(
        settings_applied(dg.load_from_defs_folder(path_within_project=Path(__file__).parent)),
        dg.Definitions(
            resources=resources_from_settings(),
            sensors=[landing_zone_sensor(), payout_failure_alert()],
            # Every run in one process unless its run config chooses Celery (defs/execution.py):
            # DuckDB already uses every core inside a step, and a process per step only adds start-up time.
            executor=in_process_or_celery,
        ),
    )
