"""The payment run through the real CLI: worked case C11 (docs/payout-rules.md, docs/payments.md).

Payees X, Y and Z each own their track; X's details are valid, Y's IBAN has a bad checksum, Z has no
row. January pays X only; the approval with a wrong control sum is refused, the right one releases a
pain.001.001.09 file (XSD-valid, mode 0600) once. The bank returns X's payment (RJCT AC04), Y's IBAN
is corrected, and February credits X back and holds X, pays Y and still holds Z.
"""

import json
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import xmlschema

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.sepa_credit_transfer import PAIN001_XSD, read_pain001
from fairstream_pipeline.lib.payments.status_report import TransactionStatus, build_status_report
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.test_cli_end_to_end import embedded_home, materialize, project_env

pytestmark = pytest.mark.e2e

JAN, FEB = "2024-01", "2024-02"
FAIRSTREAM = str(Path(sys.executable).parent / "fairstream")
PROJECT = Path(__file__).resolve().parents[1]
C11_CONFIG = json.dumps(
    {"resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000, "payout_threshold_cents": 1000}}}}
)
X_IBAN, Y_BAD_IBAN, Y_IBAN = "DE89370400440532013000", "DE89370400440532013001", "FR1420041010050500013M02606"
DEBTOR_IBAN = "GB29NWBK60161331926819"


def c11_month() -> MonthCase:
    """U1 pays 2000 and plays X once; U2 pays 1500 and plays Y once; U3 pays 1200 and plays Z once."""
    return MonthCase(
        [("U1", "premium", "FR", 2000), ("U2", "premium", "FR", 1500), ("U3", "premium", "FR", 1200)],
        [Plays("U1", "X", 1), Plays("U2", "Y", 1), Plays("U3", "Z", 1)],
    )


def statements(lake: Lake, month: str) -> dict[str, tuple]:
    """payee -> (earned, adjustment, paid, closing, hold_reason)"""
    rows = duckdb.sql(
        f"""SELECT payee_id, earned_cents, adjustment_cents, paid_cents, closing_balance_cents, hold_reason
            FROM {read_parquet(lake.parquet_glob('payee_statements', month))} ORDER BY payee_id"""
    ).fetchall()
    return {payee: tuple(rest) for payee, *rest in rows}


def batch(lake: Lake, month: str) -> list[tuple]:
    return duckdb.sql(
        f"SELECT payee_id, iban, amount_cents FROM {read_parquet(lake.parquet_glob('payment_batch', month))} ORDER BY 1"
    ).fetchall()


def fairstream(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FAIRSTREAM, *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=600)


def month_bytes(lake: Lake, month: str) -> dict[str, bytes]:
    """Every file of the closed month's statements, batch and release, by asset and name."""
    return {
        f"{asset}/{path.name}": path.read_bytes()
        for asset in ("payee_statements", "payee_adjustments", "period_close", "payment_details", "payment_batch",
                      "payment_release")
        for path in lake.partition_files(asset, month)
        if path.name != "_manifest.json" or asset == "payment_release"
    }


def _materialization(env: dict, asset: str, month: str):
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (record,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[month]), limit=1
        ).records
        return record.asset_materialization


def recorded_metadata(env: dict, asset: str, month: str) -> str:
    """Everything the UI shows of the asset's latest materialization of ``month``, as text."""
    return repr(_materialization(env, asset, month).metadata)


def metadata_value(env: dict, asset: str, month: str, key: str):
    return _materialization(env, asset, month).metadata[key].value


@pytest.fixture
def c11(tmp_path):
    landing = Landing(tmp_path / "landing")
    out_dir = tmp_path / "bank-out"
    env = project_env(
        landing.root,
        tmp_path / "warehouse",
        embedded_home(tmp_path / "home"),
        FAIRSTREAM_PAYMENTS_DEBTOR_NAME="FairStream SAS",
        FAIRSTREAM_PAYMENTS_DEBTOR_IBAN=DEBTOR_IBAN,
        FAIRSTREAM_PAYMENTS_OUT_DIR=str(out_dir),
    )
    env["FAIRSTREAM_FIRST_MONTH"] = JAN
    return landing, Lake(tmp_path / "warehouse"), env, out_dir


def test_c11_holds_pays_releases_once_and_credits_a_returned_payment(c11):
    landing, lake, env, out_dir = c11
    c11_month().write(landing, JAN)
    landing.payment_details([("X", X_IBAN, None, None), ("Y", Y_BAD_IBAN, None, None)])
    january = materialize(env, JAN, "*", "--config-json", C11_CONFIG)
    assert january.returncode == 0, january.stderr[-4000:]
    assert statements(lake, JAN) == {
        "X": (2000, 0, 2000, 0, None),
        "Y": (1500, 0, 0, 1500, "invalid_payment_details"),
        "Z": (1200, 0, 0, 1200, "no_payment_details"),
    }
    assert batch(lake, JAN) == [("X", X_IBAN, 2000)]
    batch_manifest = lake.manifest("payment_batch", JAN)
    assert batch_manifest["batch_id"].startswith("FS-2024-01-") and len(batch_manifest["batch_id"]) == 19
    for path in lake.partition_files("payment_batch", JAN):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in lake.partition_files("payment_details", JAN):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Bank details never appear unmasked in what the run printed (its logs and metadata).
    for iban in (X_IBAN, Y_BAD_IBAN, DEBTOR_IBAN):
        assert iban not in january.stdout + january.stderr
    metadata = recorded_metadata(env, "payment_batch", JAN)
    assert "DE…3000" in metadata and "DE…3001" in metadata  # X paid, Y held: masked
    assert metadata_value(env, "payment_batch", JAN, "control_sum") == "20.00 EUR"
    # Held payees are not "carried over below the threshold": the statements say which is which.
    assert metadata_value(env, "payee_statements", JAN, "payees_held") == 2
    summary_md = metadata_value(env, "payee_statements", JAN, "summary")
    assert "below the 10.00 EUR threshold: 0.00 EUR for 0 payees" in summary_md
    assert "payment): 27.00 EUR for 2 payees" in summary_md
    for asset in ("payment_details", "payee_statements", "payment_batch"):
        text = recorded_metadata(env, asset, JAN)
        assert not any(iban in text for iban in (X_IBAN, Y_BAD_IBAN, DEBTOR_IBAN)), asset

    refused = fairstream(env, "payments", "approve", JAN, "--count", "1", "--control-sum", "30.00", "--approver", "Ines")
    assert refused.returncode == 1, refused.stdout[-3000:]
    assert "the control sum you entered (30.00 EUR) does not match the batch" in refused.stdout
    assert "20.00" not in refused.stdout
    assert not out_dir.exists() or not list(out_dir.iterdir())

    approved = fairstream(env, "payments", "approve", JAN, "--count", "1", "--control-sum", "20.00", "--approver", "Ines")
    assert approved.returncode == 0, approved.stdout[-3000:]
    (released,) = out_dir.iterdir()
    assert released.name == f"{batch_manifest['batch_id']}.xml"
    assert stat.S_IMODE(released.stat().st_mode) == 0o600
    xmlschema.XMLSchema(PAIN001_XSD).validate(released.read_bytes().decode())
    transfers = read_pain001(released.read_bytes())
    assert (transfers.msg_id, transfers.count, transfers.control_sum_cents) == (batch_manifest["batch_id"], 1, 2000)
    assert [(t.iban, t.amount_cents, t.creditor_name) for t in transfers.transfers] == [(X_IBAN, 2000, "Payee X")]
    release = lake.manifest("payment_release", JAN)
    assert (release["approver"], release["payments"], release["control_sum_cents"]) == ("Ines", 1, 2000)
    first_sha = release["file_sha256"]

    again = fairstream(env, "payments", "approve", JAN, "--count", "1", "--control-sum", "20.00", "--approver", "Omar")
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"released at {release['released_at']} by Ines" in again.stdout
    assert [p.name for p in out_dir.iterdir()] == [released.name]
    assert lake.manifest("payment_release", JAN)["file_sha256"] == first_sha

    # The bank returns X's payment: account closed.
    (x_payment,) = transfers.transfers
    report = build_status_report(
        "BANK-STS-1", datetime(2024, 2, 6, 9, 0, tzinfo=timezone.utc), transfers.msg_id,
        [TransactionStatus(x_payment.end_to_end_id, "RJCT", "AC04")],
    )
    (landing.root / "payment_reports").mkdir()
    (landing.root / "payment_reports" / "bank-2024-02-06.xml").write_bytes(report)
    ingested = fairstream(env, "payments", "ingest")
    assert ingested.returncode == 0, ingested.stdout[-3000:]
    assert "applied payment_reports/bank-2024-02-06.xml to 2024-01's batch: 0 settled, 1 returned" in ingested.stdout
    assert "returned: X 20.00 EUR (AC04 closed account)" in ingested.stdout
    twice = fairstream(env, "payments", "ingest")
    assert twice.returncode == 0 and "already applied" in twice.stdout
    status_bytes = [p.read_bytes() for p in lake.partition_files("payment_status", JAN)]

    # A damaged report and one that names a payment the batch does not hold: each fails naming its
    # file, and nothing of either is applied.
    (landing.root / "payment_reports" / "damaged.xml").write_bytes(report[: len(report) // 2])
    unknown = build_status_report(
        "BANK-STS-2", datetime(2024, 2, 7, 9, 0, tzinfo=timezone.utc), transfers.msg_id,
        [TransactionStatus("FS202401-not-ours", "ACSC", None)],
    )
    (landing.root / "payment_reports" / "unknown.xml").write_bytes(unknown)
    bad = fairstream(env, "payments", "ingest")
    assert bad.returncode == 1, bad.stdout[-3000:]
    assert "payment_reports/damaged.xml: not an XML document" in bad.stdout
    assert (
        f"payment_reports/unknown.xml: unknown end-to-end id(s) for batch {transfers.msg_id}: FS202401-not-ours; "
        "nothing of it was applied"
    ) in bad.stdout
    assert [p.read_bytes() for p in lake.partition_files("payment_status", JAN)] == status_bytes
    for name in ("damaged.xml", "unknown.xml"):
        (landing.root / "payment_reports" / name).unlink()

    landing.payment_details([("X", X_IBAN, None, None), ("Y", Y_IBAN, None, None)])
    c11_month().write(landing, FEB)
    february = materialize(env, FEB, "*", "--config-json", C11_CONFIG)
    assert february.returncode == 0, february.stderr[-4000:]
    assert statements(lake, FEB) == {
        "X": (2000, 2000, 0, 4000, "returned_payment"),
        "Y": (1500, 0, 3000, 0, None),
        "Z": (1200, 0, 0, 2400, "no_payment_details"),
    }
    adjustments = duckdb.sql(
        f"SELECT payee_id, source_month, cents, reason FROM {read_parquet(lake.parquet_glob('payee_adjustments', FEB))}"
    ).fetchall()
    assert adjustments == [("X", JAN, 2000, "returned_payment")]
    assert batch(lake, FEB) == [("Y", Y_IBAN, 3000)]

    summary = fairstream(env, "summary", JAN, FEB)
    assert summary.returncode == 0, summary.stderr
    assert f"payment batch {batch_manifest['batch_id']}: partly returned, 1 payments 20.00 EUR" in summary.stdout
    assert "adjustments for 2024-01: 1 payees, net 20.00 EUR (payments for 2024-01 returned by the bank)" in summary.stdout

    # January again: nothing of the closed month changes.
    closed = month_bytes(lake, JAN)
    rerun = materialize(env, JAN, "*", "--config-json", C11_CONFIG)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert month_bytes(lake, JAN) == closed
    assert [p.name for p in out_dir.iterdir()] == [released.name]


def test_two_concurrent_approvals_release_one_file(c11):
    """Two approvals of one batch at once, each a real run: the month's lock lets one release it; the
    other fails on the lock or reports the first release. One file, one release record."""
    landing, lake, env, out_dir = c11
    c11_month().write(landing, JAN)
    landing.payment_details([("X", X_IBAN, None, None), ("Y", Y_IBAN, "BNPAFRPPXXX", "Y Holdings")])
    january = materialize(env, JAN, "*", "--config-json", C11_CONFIG)
    assert january.returncode == 0, january.stderr[-4000:]
    assert batch(lake, JAN) == [("X", X_IBAN, 2000), ("Y", Y_IBAN, 1500)]
    approvals = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "fairstream_pipeline.definitions",
             "--select", "payment_release", "--partition", JAN, "--config-json",
             json.dumps({"ops": {"payment_release": {"config": {"approver": approver, "count": 2, "control_sum_cents": 3500}}}})],
            env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for approver in ("Ines", "Omar")
    ]
    results = [(a.wait(timeout=600), a.communicate()[1]) for a in approvals]
    assert any(code == 0 for code, _ in results), [err[-2000:] for _, err in results]
    for code, err in results:
        assert code == 0 or f"{JAN} is being computed by run" in err, err[-3000:]
    (released,) = out_dir.iterdir()
    release = lake.manifest("payment_release", JAN)
    assert released.name == release["file_name"] and release["approver"] in ("Ines", "Omar")
    assert (release["payments"], release["control_sum_cents"]) == (2, 3500)
    xmlschema.XMLSchema(PAIN001_XSD).validate(released.read_bytes().decode())
    assert [t.creditor_name for t in read_pain001(released.read_bytes()).transfers] == ["Payee X", "Y Holdings"]
    assert len(list(lake.month_dir("payment_release", JAN).glob("v-*"))) == 1  # one release, never replaced
