"""Statement emails: rendering, publication to the app database and the outbox, against PostgreSQL."""

import dataclasses

import dagster as dg
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.app_db.store import OUTBOX_COLUMNS
from fairstream_pipeline.lib.notifications.message import MESSAGE_FIELDS, Message
from fairstream_pipeline.lib.notifications.outbox_queue import OutboxMessage
from fairstream_pipeline.lib.notifications.statement_email import (
    TEMPLATES,
    Statement,
    message_id,
    render_statement,
)
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.postgres import PG

MONTH = "2024-01"
NOTIFICATIONS = "group:notifications"


def test_a_paid_statement_renders_every_amount_and_the_csv():
    message = render_statement(
        Statement("2026-10", "artist-7", "Ana Lua", "ana@example.org", 250, 1223, 1573, 1400, 1473, 0, "user_centric",
                  (("FR", "free", 23, 73, 100), ("FR", "paid", 1200, 1500, 1300))),
        threshold_cents=1000,
        domain="statements.example",
    )
    assert message.subject == "Your FairStream statement for October 2026"
    assert message.recipient == "ana@example.org" and message.status == "pending"
    assert message.body_text.splitlines()[:12] == [
        "Hello Ana Lua,",
        "",
        "Here is your FairStream royalty statement for October 2026 (payee artist-7).",
        "",
        "Earned this month (user-centric):          12.23 EUR",
        "Pro-rata would have paid:                  15.73 EUR",
        "Artist-centric would have paid:            14.00 EUR",
        "Opening balance:                            2.50 EUR",
        "Paid this month:                           14.73 EUR",
        "Closing balance:                            0.00 EUR",
        "Paid under: user-centric",
        "",
    ]
    assert "Paid this month: 14.73 EUR." in message.body_text
    assert "FairStream paid you user-centrically this month" in message.body_text
    assert "<td>Pro-rata would have paid</td><td style=\"text-align:right\">15.73 EUR</td>" in message.body_html
    assert "<td>Artist-centric would have paid</td><td style=\"text-align:right\">14.00 EUR</td>" in message.body_html
    assert "<p>Paid under: user-centric</p>" in message.body_html
    assert message.attachment_csv == (
        "month,payee_id,line,source_month,country,tier,uc_cents,pr_cents,acps_cents,reason\n"
        "2026-10,artist-7,earned,2026-10,FR,free,23,73,100,\n"
        "2026-10,artist-7,earned,2026-10,FR,paid,1200,1500,1300,\n"
    )
    assert "Adjustments" not in message.body_text  # no adjustment: no adjustment row
    assert message.attachment_name == "fairstream-statement-2026-10-artist-7.csv"
    assert message.message_id == message_id("2026-10", "artist-7", "monthly_statement", "statements.example")
    assert message.message_id.startswith("<monthly_statement.2026-10.") and message.message_id.endswith("@statements.example>")


def test_adjustments_are_listed_with_their_source_month_and_a_negative_balance_says_it_is_recovered():
    message = render_statement(
        Statement("2024-03", "X", "Xavier", "x@example.org", 0, 1000, 1000, 1000, 0, -500, "user_centric",
                  (("FR", "paid", 1000, 1000, 1000),),
                  adjustment_cents=-1500, adjustments=(("2024-01", -1500, "late_data"),)),
        threshold_cents=1000,
        domain="statements.example",
    )
    assert message.body_text.splitlines()[4:17] == [
        "Earned this month (user-centric):          10.00 EUR",
        "Pro-rata would have paid:                  10.00 EUR",
        "Artist-centric would have paid:            10.00 EUR",
        "Opening balance:                            0.00 EUR",
        "Adjustments for earlier months:           -15.00 EUR",
        "Paid this month:                            0.00 EUR",
        "Closing balance:                           -5.00 EUR",
        "Paid under: user-centric",
        "",
        "Adjustments posted this month:",
        "  January 2024 (late data for 2024-01): -15.00 EUR",
        "",
        "Not paid this month: your balance is negative (-5.00 EUR) after adjustments for earlier months; "
        "it will be recovered from your future earnings.",
    ]
    assert "<li>January 2024 (late data for 2024-01): -15.00 EUR</li>" in message.body_html
    assert message.attachment_csv.splitlines()[1:] == [
        "2024-03,X,earned,2024-03,FR,paid,1000,1000,1000,",
        "2024-03,X,adjustment,2024-01,,,-1500,,,late data for 2024-01",
    ]


def test_a_statement_paid_under_artist_centric_shows_the_three_figures_and_the_paying_model():
    """Rules v4: earned is the ACPS figure; user-centric (from the lines) and pro-rata beside it;
    an adjustment goes in the paying model's CSV column."""
    message = render_statement(
        Statement("2026-11", "artist-7", "Ana Lua", "ana@example.org", 0, 1400, 1573, 1400, 1390, 0, "artist_centric",
                  (("FR", "free", 23, 73, 100), ("FR", "paid", 1200, 1500, 1300)),
                  adjustment_cents=-10, adjustments=(("2026-10", -10, "late_data"),)),
        threshold_cents=1000,
        domain="statements.example",
    )
    assert message.body_text.splitlines()[4:13] == [
        "Earned this month (artist-centric):        14.00 EUR",
        "User-centric would have paid:              12.23 EUR",
        "Pro-rata would have paid:                  15.73 EUR",
        "Opening balance:                            0.00 EUR",
        "Adjustments for earlier months:            -0.10 EUR",
        "Paid this month:                           13.90 EUR",
        "Closing balance:                            0.00 EUR",
        "Paid under: artist-centric",
        "",
    ]
    assert "FairStream paid you artist-centrically this month: each pool is shared by weighted" in message.body_text
    assert "user-centric and pro-rata figures show what the other models" in message.body_text
    assert "<tr><td>Earned this month (artist-centric)</td><td style=\"text-align:right\">14.00 EUR</td></tr>" in message.body_html
    assert "<tr><td>User-centric would have paid</td><td style=\"text-align:right\">12.23 EUR</td></tr>" in message.body_html
    assert "<p>Paid under: artist-centric</p>" in message.body_html
    assert message.attachment_csv.splitlines() == [
        "month,payee_id,line,source_month,country,tier,uc_cents,pr_cents,acps_cents,reason",
        "2026-11,artist-7,earned,2026-11,FR,free,23,73,100,",
        "2026-11,artist-7,earned,2026-11,FR,paid,1200,1500,1300,",
        "2026-11,artist-7,adjustment,2026-10,,,,,-10,late data for 2026-10",
    ]


def test_a_statement_paid_under_pro_rata_and_an_unknown_model_is_refused():
    statement = Statement("2026-12", "B", "Bea", "b@example.org", 0, 73, 73, 80, 0, 73, "pro_rata", (("FR", "free", 23, 73, 80),))
    assert [statement.model_cents(m) for m in ("user_centric", "pro_rata", "artist_centric")] == [23, 73, 80]
    text = render_statement(statement, 1000, "x").body_text
    assert text.splitlines()[4:7] == [
        "Earned this month (pro-rata):               0.73 EUR",
        "User-centric would have paid:               0.23 EUR",
        "Artist-centric would have paid:             0.80 EUR",
    ]
    assert "Paid under: pro-rata\n" in text and "FairStream paid you pro-rata this month" in text
    with pytest.raises(ValueError, match="payout_model must be one of"):
        dataclasses.replace(statement, payout_model="fair")


def test_an_unpaid_statement_says_it_carries_over_and_a_missing_email_is_no_address():
    message = render_statement(
        Statement("2026-09", "w<1>", None, "  ", 0, 640, 600, 620, 0, 640, "user_centric", ()), threshold_cents=1000,
        domain="x.example",
    )
    assert message.recipient is None and message.status == "no_address"
    assert (
        "Not paid this month: your balance is below the 10.00 EUR payout threshold and carries over to next month."
        in message.body_text
    )
    assert "w&lt;1&gt;" in message.body_html and "w<1>" not in message.body_html
    assert message_id("2026-09", "w<1>", "monthly_statement", "x.example") == message.message_id
    assert message_id("2026-10", "w<1>", "monthly_statement", "x.example") != message.message_id


def test_one_message_type_from_the_renderer_to_the_outbox_row_and_the_sender():
    assert [f.name for f in dataclasses.fields(OutboxMessage)] == [*MESSAGE_FIELDS, "id", "attempts"]
    assert (*MESSAGE_FIELDS, "status") == OUTBOX_COLUMNS  # the outbox insert and the lake table
    message = render_statement(
        Statement("2026-10", "A", "Ana", "a@example.org", 0, 1, 1, 1, 0, 1, "user_centric", ()), 1000, "x.example"
    )
    assert type(message) is Message and len(message.as_row()) == len(OUTBOX_COLUMNS)
    claimed = OutboxMessage(*message.as_row()[:-1], id=7, attempts=1)
    assert claimed.as_row() == message.as_row() and (claimed.id, claimed.attempts) == (7, 1)


def test_the_templates_ship_with_the_package_and_only_the_html_one_is_autoescaped():
    assert sorted(p.name for p in TEMPLATES.iterdir()) == ["statement.html.j2", "statement.txt.j2"]
    message = render_statement(
        Statement("2026-10", "<i>", "A & B", "a@example.org", 0, 1, 1, 1, 0, 1, "user_centric", ()), 1000, "x"
    )
    assert message.body_text.startswith("Hello A & B,\n") and "(payee <i>)." in message.body_text
    assert "<p>Hello A &amp; B,</p>" in message.body_html and "(payee &lt;i&gt;)." in message.body_html


@pytest.fixture
def small_month(landing):
    MonthCase(
        [("U1", "premium", "FR", 1500), ("U2", "premium", "FR", 500), ("U3", "premium", "DE", 700)],
        [Plays("U1", "X", 2), Plays("U2", "Y", 1), Plays("U3", "Z", 1)],
        splits={"X": [("LABEL", 600_000), ("ANA", 400_000)], "Y": [("BEA", 1_000_000)], "Z": [("NOMAIL", 1_000_000)]},
    ).write(landing, MONTH)
    # NOMAIL has no address in the catalog.
    payees = pq.read_table(landing.root / "catalog" / "payees.parquet").to_pylist()
    for row in payees:
        if row["payee_id"] == "NOMAIL":
            row["email"] = None
    pq.write_table(pa.Table.from_pylist(payees, schema=pq.read_schema(landing.root / "catalog" / "payees.parquet")),
                   landing.root / "catalog" / "payees.parquet")


def _query(database: str, sql: str) -> list[tuple]:
    with psycopg2.connect(host=PG.host, port=PG.port, user=PG.user, password=PG.password, dbname=database) as c:
        with c.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_publication_and_outbox_are_idempotent(small_month, materialize_month, fresh_database):
    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    config = {"resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000}}}}
    database = {"app_database": AppDatabaseResource(url=url)}

    first = materialize_month(MONTH, run_config=config, resources=database)
    assert first.success
    assert _metadata(first, "statement_notifications")["dagster/row_count"] == 4
    assert _metadata(first, "statement_notifications")["no_address"] == 1
    assert _metadata(first, "published_statements")["statements"] == 4
    assert _metadata(first, "statement_outbox")["enqueued"] == 4

    statements = _query(
        fresh_database,
        "SELECT payee_id, earned_cents, pro_rata_cents, acps_cents, payout_model, paid_cents, closing_balance_cents "
        "FROM statements ORDER BY 1",
    )
    # ACPS v1 here (no artist attributes, no active plays, under the cap): weights are streams, as pro-rata.
    assert statements == [("ANA", 600, 533, 533, "user_centric", 0, 600), ("BEA", 500, 667, 667, "user_centric", 0, 500),
                          ("LABEL", 900, 800, 800, "user_centric", 0, 900), ("NOMAIL", 700, 700, 700, "user_centric", 0, 700)]
    lines = _query(
        fresh_database, "SELECT payee_id, country, tier, uc_cents, pr_cents, acps_cents FROM statement_lines ORDER BY 1, 2"
    )
    # FR paid: pool 2000 cents; PR by streams X=2, Y=1 -> X 1333.33 (LABEL 60%, ANA 40%), Y 666.67 (BEA).
    assert lines == [("ANA", "FR", "paid", 600, 533, 533), ("BEA", "FR", "paid", 500, 667, 667),
                     ("LABEL", "FR", "paid", 900, 800, 800), ("NOMAIL", "DE", "paid", 700, 700, 700)]
    outbox = _query(fresh_database, "SELECT payee_id, status, recipient FROM notification_outbox ORDER BY 1")
    assert outbox == [("ANA", "pending", "ana@example.org"), ("BEA", "pending", "bea@example.org"),
                      ("LABEL", "pending", "label@example.org"), ("NOMAIL", "no_address", None)]

    second = materialize_month(MONTH, selection=NOTIFICATIONS, run_config=config, resources=database)
    assert second.success
    assert _metadata(second, "statement_outbox")["enqueued"] == 0
    assert _metadata(second, "statement_outbox")["already_queued"] == 4
    assert _query(fresh_database, "SELECT count(*) FROM statements")[0][0] == 4
    assert _query(fresh_database, "SELECT count(*) FROM notification_outbox")[0][0] == 4


def test_without_an_app_database_the_notifications_say_so(small_month, materialize_month):
    """No materialization of what was not written, an observation instead (test_honest_status.py)."""
    result = materialize_month(MONTH)
    assert result.success
    assert _metadata(result, "statement_notifications")["to_send"] == 3
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized & {"published_statements", "statement_outbox"} == set()
    observed = [
        (e.asset_observation_data.asset_observation.asset_key.to_user_string(),
         e.asset_observation_data.asset_observation.metadata["status"].value)
        for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    assert [o for o in observed if o[0] != "payment_batch"] == [
        ("published_statements", "not configured: FAIRSTREAM_DATABASE_URL is empty, nothing was written"),
        ("statement_outbox", "not configured: FAIRSTREAM_DATABASE_URL is empty, nothing was written"),
    ]
    # The landing zone has no payment details: the batch says so too (test_payment_run_end_to_end.py has one).
    assert [o[1] for o in observed if o[0] == "payment_batch"] == [
        "not configured: the landing zone has no catalog/payment_details.parquet, so FairStream does not manage "
        "payment details for it (statements pay as under rules v2)"
    ]


def test_db_upgrade_command_migrates_a_fresh_database(fresh_database, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    env = {**os.environ, "FAIRSTREAM_DATABASE_URL": url}
    fairstream = str(Path(sys.executable).parent / "fairstream")
    for _ in range(2):  # idempotent
        run = subprocess.run([fairstream, "db-upgrade"], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "application database at revision 0005"
    tables = _query(fresh_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    assert tables == [("alembic_version",), ("notification_outbox",), ("outbox_dead_letter_alerts",),
                      ("outbox_send_slots",), ("payment_releases",), ("statement_adjustments",), ("statement_lines",),
                      ("statements",)]


def test_migration_0005_reads_statements_published_before_it_as_user_centric(fresh_database):
    """Rows published under 0004 (a closed statement, immutable since 0002) take acps_cents 0 and
    payout_model user_centric; new rows name their model, and only the three models."""
    from alembic import command
    from alembic.config import Config

    from fairstream_pipeline.lib.app_db.schema import MIGRATIONS, sqlalchemy_url, upgrade

    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    command.upgrade(config, "0004")
    with psycopg2.connect(host=PG.host, port=PG.port, user=PG.user, password=PG.password, dbname=fresh_database) as c:
        with c.cursor() as cursor:
            cursor.execute(
                "INSERT INTO statements (month, payee_id, opening_balance_cents, earned_cents, pro_rata_cents, "
                "paid_cents, closing_balance_cents, rules_version, closed_at, statements_hash) "
                "VALUES ('2024-01', 'OLD', 0, 1500, 1400, 1500, 0, 'v3', now(), 'h')"
            )
            cursor.execute("INSERT INTO statement_lines VALUES ('2024-01', 'OLD', 'FR', 'paid', 1500, 1400)")
    assert upgrade(url) == "0005"
    assert _query(fresh_database, "SELECT payee_id, acps_cents, payout_model FROM statements") == [("OLD", 0, "user_centric")]
    assert _query(fresh_database, "SELECT payee_id, uc_cents, pr_cents, acps_cents FROM statement_lines") == [
        ("OLD", 1500, 1400, 0)
    ]
    with pytest.raises(psycopg2.errors.CheckViolation):
        _query(
            fresh_database,
            "INSERT INTO statements (month, payee_id, opening_balance_cents, earned_cents, pro_rata_cents, paid_cents, "
            "closing_balance_cents, rules_version, payout_model) VALUES ('2024-02', 'NEW', 0, 1, 1, 0, 1, 'v4', 'fair')",
        )
    command.downgrade(config, "0004")
    assert _query(
        fresh_database,
        "SELECT count(*) FROM information_schema.columns WHERE column_name IN ('acps_cents', 'payout_model')",
    ) == [(0,)]
