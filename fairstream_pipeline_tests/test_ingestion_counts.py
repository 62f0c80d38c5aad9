"""A small hand-made month through the real ingestion assets, with exact row counts."""

import json
import duckdb
import pytest

from fairstream_pipeline.lib.ingestion.accounting import RowAccounting, account_for_event_rows
from fairstream_pipeline.lib.ingestion.clean_plays import attach_clean_plays
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone

MONTH = "2026-10"
INGESTION = "group:ingestion"


@pytest.fixture
def hand_made_month(landing):
    """Ten event rows across two days and three files, with one row of each kind of trouble."""
    landing.subscriptions(
        MONTH,
        [("u1", "premium", "FR", 999), ("u2", "free", "FR", 0), ("u3", "family", "DE", 1499)],
    )
    landing.ad_revenue(MONTH, [("FR", 100)])
    landing.events(
        "2026-10-01",
        [
            ("e01", "u1", "t1", "2026-10-01 10:00", 200_000),  # clean
            ("e02", "u2", "t2", "2026-10-01 11:00", 1_000),  # clean (short plays still count here)
            ("e03", "u9", "t1", "2026-10-01 12:00", 60_000),  # unknown_user
            ("e04", None, "t1", "2026-10-01 12:00", 60_000),  # invalid_row: null user
            ("e05", "u1", "t1", "2026-10-01 12:00", -1),  # invalid_row: negative ms_played
            ("e06", "u1", "t1", "2026-09-30 23:59", 60_000),  # outside_partition
            ("e07", "u1", "t3", "2026-10-01 13:00", 60_000),  # conflicting_duplicate (1 of 2)
        ],
    )
    landing.events(
        "2026-10-01",
        [
            ("e01", "u1", "t1", "2026-10-01 10:00", 200_000),  # exact duplicate of e01
            ("e07", "u1", "t3", "2026-10-01 13:00", 61_000),  # conflicting_duplicate (2 of 2)
            ("e03", "u9", "t1", "2026-10-01 12:00", 60_000),  # exact duplicate of an unknown user's event
        ],
        name="part-1.parquet",
    )
    landing.events("2026-10-15", [("e08", "u3", "tx_not_in_catalog", "2026-10-15 08:00", 45_000)])
    landing.close_days(MONTH)
    return landing


def test_hand_made_month_exact_counts(hand_made_month, materialize_month, tmp_path):
    result = materialize_month(MONTH, selection=INGESTION)

    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "clean_plays_rows_accounted_for": True,
        "play_quarantine_rate": False,  # 6 of 11 rows is far above 0.5%: a WARN
    }
    meta = {
        e.materialization.asset_key.to_user_string(): {
            k: v.value for k, v in e.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }
    assert meta["clean_plays"]["dagster/row_count"] == 3
    assert meta["clean_plays"]["rows_read"] == 11
    assert meta["clean_plays"]["duplicates_dropped"] == 2
    assert meta["play_quarantine"]["dagster/row_count"] == 6
    assert {k: v for k, v in meta["play_quarantine"].items() if k.startswith("quarantined_")} == {
        "quarantined_invalid_row": 2,
        "quarantined_outside_partition": 1,
        "quarantined_conflicting_duplicate": 2,
        "quarantined_unknown_user": 1,
    }
    assert meta["billed_users"]["dagster/row_count"] == 3
    assert meta["ad_revenue"]["net_cents"] == 100

    lake = Lake(tmp_path / "warehouse")
    con = duckdb.connect()
    attach_clean_plays(con, lake, MONTH)
    clean = con.execute("SELECT user_id, track_id, ms_played, day::VARCHAR FROM clean_plays ORDER BY user_id").fetchall()
    assert clean == [  # e01, e02 and e08
        ("u1", "t1", 200_000, "2026-10-01"),
        ("u2", "t2", 1_000, "2026-10-01"),
        ("u3", "tx_not_in_catalog", 45_000, "2026-10-15"),
    ]
    # Integer-coded: users ranked by id; the catalog's tracks (this landing zone has no catalog), then
    # the month's uncatalogued ones.
    folder = lake.partition_dir("clean_plays", MONTH)
    assert con.execute(f"SELECT user_index, user_id FROM '{folder}/users.parquet'").fetchall() == [
        (0, "u1"), (1, "u2"), (2, "u3")
    ]
    tracks = con.execute(f"SELECT track_index, track_id, catalogued FROM '{folder}/tracks.parquet'").fetchall()
    assert tracks == [(0, "t1", False), (1, "t2", False), (2, "tx_not_in_catalog", False)]
    assert con.execute(
        f"SELECT user_index, track_index, uncatalogued_track_id, ms_played "
        f"FROM '{folder}/plays/bucket=0/day=2026-10-15/plays.parquet'"
    ).fetchall() == [(2, None, "tx_not_in_catalog", 45_000)]  # its index is known once every day is in

    quarantine = duckdb.sql(
        "SELECT reason, source_file, file_row_number, event_id "
        f"FROM read_parquet('{lake.parquet_glob('play_quarantine', MONTH)}', hive_partitioning = false)"
    ).fetchall()
    day1 = "listening_events/date=2026-10-01/"
    assert quarantine == [
        ("unknown_user", day1 + "part-0.parquet", 2, "e03"),
        ("invalid_row", day1 + "part-0.parquet", 3, "e04"),
        ("invalid_row", day1 + "part-0.parquet", 4, "e05"),
        ("outside_partition", day1 + "part-0.parquet", 5, "e06"),
        ("conflicting_duplicate", day1 + "part-0.parquet", 6, "e07"),
        ("conflicting_duplicate", day1 + "part-1.parquet", 1, "e07"),
    ]


def test_billed_users_tiers(hand_made_month, materialize_month, tmp_path):
    assert materialize_month(MONTH, selection="billed_users").success
    rows = duckdb.sql(
        f"SELECT * FROM read_parquet('{Lake(tmp_path / 'warehouse').parquet_glob('billed_users', MONTH)}',"
        " hive_partitioning = false)"
    ).fetchall()
    assert rows == [
        ("u1", "premium", "paid", "FR", 999),
        ("u2", "free", "free", "FR", 0),
        ("u3", "family", "paid", "DE", 1499),
    ]


def test_rematerializing_replaces_the_month_byte_for_byte(hand_made_month, materialize_month, tmp_path):
    lake = Lake(tmp_path / "warehouse")

    def current() -> dict[str, bytes]:
        """The current version's files; the manifest without its version and writing run; the
        (unsorted) play files as their sorted rows."""
        folder = lake.partition_dir("clean_plays", MONTH)
        files = {
            p.relative_to(folder).as_posix(): (
                sorted(duckdb.sql(f"SELECT * FROM '{p}'").fetchall(), key=repr) if p.name == "plays.parquet" else p.read_bytes()
            )
            for p in lake.partition_files("clean_plays", MONTH)
        }
        manifest = json.loads(files["_manifest.json"])
        files["_manifest.json"] = {k: v for k, v in manifest.items() if k not in ("version", "written_by_run")}
        return files

    assert materialize_month(MONTH, selection=INGESTION).success
    first, first_version = current(), lake.published(MONTH)["clean_plays"]
    assert materialize_month(MONTH, selection=INGESTION).success
    assert current() == first
    assert lake.published(MONTH)["clean_plays"] != first_version  # a new version, published atomically
    assert sorted(first) == [
        "_dictionary.json", "_manifest.json", "artists.parquet", "files.parquet",
        "plays/bucket=0/day=2026-10-01/plays.parquet", "plays/bucket=0/day=2026-10-15/plays.parquet",
        "removed.parquet", "tracks.parquet", "users.parquet",
    ]
    # Only the month's folder, holding the current version and the one it replaced.
    assert sorted(p.name for p in (tmp_path / "warehouse" / "clean_plays").iterdir()) == [f"month={MONTH}"]
    assert sorted(p.name for p in lake.month_dir("clean_plays", MONTH).iterdir()) == sorted(
        [first_version, lake.published(MONTH)["clean_plays"]]
    )


def test_a_late_file_unbalances_the_accounting_until_the_month_is_recomputed(
    hand_made_month, materialize_month, tmp_path
):
    zone, lake = LandingZone(hand_made_month.root), Lake(tmp_path / "warehouse")
    assert materialize_month(MONTH, selection=INGESTION).success
    assert account_for_event_rows(zone, lake, MONTH) == RowAccounting(11, 3, 6, 2, True)

    hand_made_month.events(
        "2026-10-20", [("e09", "u1", "t1", "2026-10-20 09:00", 90_000)], name="late.parquet"
    )
    stale = account_for_event_rows(zone, lake, MONTH)
    assert (stale.unaccounted, stale.inputs_unchanged, stale.balanced) == (1, False, False)

    recomputed = materialize_month(MONTH, selection=INGESTION)
    evaluation = {e.check_name: e for e in recomputed.get_asset_check_evaluations()}
    assert evaluation["clean_plays_rows_accounted_for"].passed
    assert evaluation["clean_plays_rows_accounted_for"].metadata["clean_plays"].value == 4
    assert evaluation["clean_plays_rows_accounted_for"].metadata["landing_rows"].value == 12
