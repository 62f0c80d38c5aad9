"""The bank's status reports: each new file in the landing zone's payment_reports/ is applied once."""

import dagster as dg

from fairstream_pipeline.defs.payments.jobs import ingest_payment_report, reject_unattributable_report
from fairstream_pipeline.defs.resources import LandingZoneResource, WarehouseResource
from fairstream_pipeline.lib.assets import PAYMENT_STATUS
from fairstream_pipeline.lib.payments.reports import applied_reports, attribute, read_report, report_paths
from fairstream_pipeline.lib.payments.status_report import StatusReportError


@dg.sensor(
    jobs=[ingest_payment_report, reject_unattributable_report],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone's payment_reports/ for the bank's status reports (pain.002). Each new file "
        "becomes one ingest_payment_report run for the month of the batch it answers (a file already applied "
        "is skipped; the run key is its name and sha256, so a changed file is applied again, whole or not at "
        "all). A file that cannot be read or answers no FairStream batch gets a reject_unattributable_report "
        "run that fails naming it."
    ),
)
def payment_reports_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource, warehouse: WarehouseResource
):
    lake, runs = warehouse.lake(), []
    for path in report_paths(landing_zone.root):
        report = read_report(landing_zone.root, path.name)
        run_key = f"{report.name}@{report.sha256[:16]}"
        try:
            _, month = attribute(report)
        except StatusReportError:
            runs.append(
                dg.RunRequest(
                    run_key=run_key,
                    job_name=reject_unattributable_report.name,
                    run_config={"ops": {"reject_payment_report": {"config": {"report": report.name}}}},
                    tags={"fairstream/trigger": "payment_reports_sensor"},
                )
            )
            continue
        if any(a["sha256"] == report.sha256 for a in applied_reports(lake, month)):
            continue  # applied already (by `fairstream payments ingest`, say)
        runs.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=ingest_payment_report.name,
                partition_key=month,
                run_config={"ops": {PAYMENT_STATUS: {"config": {"report": report.name}}}},
                tags={"fairstream/trigger": "payment_reports_sensor"},
            )
        )
    if not runs:
        return dg.SkipReason("no new bank status report in payment_reports/")
    return runs
