"""payment_reports_sensor: each new bank report becomes one run, for the month of the batch it answers."""

import hashlib
from datetime import datetime, timezone

import dagster as dg

from fairstream_pipeline.defs.payments.sensors import payment_reports_sensor
from fairstream_pipeline.defs.resources import LandingZoneResource, WarehouseResource
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.lifecycle import Payment
from fairstream_pipeline.lib.payments.reports import publish_status
from fairstream_pipeline.lib.payments.status_report import TransactionStatus, build_status_report

BATCH = "FS-2024-01-0badcafe"


def _report(original: str) -> bytes:
    return build_status_report("BANK-1", datetime(2024, 2, 6, tzinfo=timezone.utc), original,
                               [TransactionStatus("FS202401-abc", "RJCT", "AC04")])


def evaluate(tmp_path):
    with dg.build_sensor_context(
        resources={
            "landing_zone": LandingZoneResource(root=str(tmp_path / "landing")),
            "warehouse": WarehouseResource(root=str(tmp_path / "warehouse")),
        }
    ) as context:
        return payment_reports_sensor(context)


def test_each_report_is_one_run_and_an_unattributable_one_a_run_that_fails(tmp_path):
    folder = tmp_path / "landing" / "payment_reports"
    folder.mkdir(parents=True)
    good = _report(BATCH)
    (folder / "a-good.xml").write_bytes(good)
    (folder / "b-damaged.xml").write_bytes(b"<Document")
    (folder / "c-other.xml").write_bytes(_report("SOMEONE-ELSES-BATCH"))
    (folder / ".d-partial.xml.tmp").write_bytes(b"<Doc")  # being written: not a report yet
    runs = evaluate(tmp_path)
    sha = hashlib.sha256(good).hexdigest()
    assert [(r.job_name, r.partition_key, r.run_key, r.run_config) for r in runs] == [
        ("ingest_payment_report", "2024-01", f"payment_reports/a-good.xml@{sha[:16]}",
         {"ops": {"payment_status": {"config": {"report": "payment_reports/a-good.xml"}}}}),
        ("reject_unattributable_report", None, f"payment_reports/b-damaged.xml@{hashlib.sha256(b'<Document').hexdigest()[:16]}",
         {"ops": {"reject_payment_report": {"config": {"report": "payment_reports/b-damaged.xml"}}}}),
        ("reject_unattributable_report", None, runs[2].run_key,
         {"ops": {"reject_payment_report": {"config": {"report": "payment_reports/c-other.xml"}}}}),
    ]


def test_a_report_already_applied_is_not_requested_again(tmp_path):
    folder = tmp_path / "landing" / "payment_reports"
    folder.mkdir(parents=True)
    good = _report(BATCH)
    (folder / "a-good.xml").write_bytes(good)
    publish_status(
        Lake(tmp_path / "warehouse"), "2024-01", [Payment("FS202401-abc", "X", 2000, "h", "returned", "RJCT", "AC04")],
        [{"report": "payment_reports/a-good.xml", "sha256": hashlib.sha256(good).hexdigest()}], BATCH,
    )
    assert isinstance(evaluate(tmp_path), dg.SkipReason)


def test_no_folder_no_run(tmp_path):
    result = evaluate(tmp_path)
    assert isinstance(result, dg.SkipReason) and "no new bank status report" in result.skip_message
