"""End to end with the real services: dagster-webserver and dagster-daemon on the PostgreSQL instance.

One module-scoped deployment (throwaway database, DAGSTER_HOME holding a copy of the top-level
dagster.yaml, temporary landing zone and lake, FAIRSTREAM_FIRST_MONTH=2026-08), then, in order:

1. the landing-zone sensor, turned on through GraphQL, computes 2026-08 once the month is complete,
   and again after a late file, then says the month is up to date;
2. ``dagster job backfill`` (the CLI) computes 2026-09 and 2026-10 one after the other, October
   opening from September's closing balances;
3. an asset backfill of the payout chain launched through GraphQL recomputes both months, still
   consistent.

Every wait is bounded and fails with the tail of the webserver and daemon logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.conftest import TEST_SETTINGS
from fairstream_pipeline_tests.dagster_services import (
    BIN,
    LOCATION,
    REPO,
    REPOSITORY,
    RUNS_QUERY,
    DagsterServices,
    ignored_signals,
    wait_for_graphql,
    wait_until_loaded,
)
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.postgres import PG, connect_admin

pytestmark = pytest.mark.e2e

FIRST, SEPT, OCT = "2026-08", "2026-09", "2026-10"
# 30,000 rows: at 150 users the default (users x 60) is mostly the two bots' sessions, which leaves
# paid segments without a counted stream: too much unallocated money for a month to close.
USERS, SEED, EVENTS = 150, 1, 30_000
JOB = "monthly_payout_job"
SENSOR = "landing_zone_sensor"
SENSOR_INTERVAL_SECONDS = 5
REPO_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
SENSOR_SELECTOR = {**REPO_SELECTOR, "sensorName": SENSOR}

RUN_TIMEOUT = 120  # sensor tick (<= 10 s) + run queue (<= 5 s) + a 9,000-play month (~5 s in process)
BACKFILL_TIMEOUT = 240  # the backfill daemon iterates every 30 s; 3-4 iterations for a 2-month chain
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}



# -- the deployment ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A throwaway database, DAGSTER_HOME, landing zone and lake; the webserver and the daemon running."""
    root = tmp_path_factory.mktemp("daemon_e2e")
    database = f"fairstream_test_{uuid.uuid4().hex[:10]}"
    with connect_admin() as admin:  # fails (never skips) when PostgreSQL is unreachable
        admin.execute(f'CREATE DATABASE "{database}"')
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    landing, warehouse = root / "landing", root / "warehouse"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(
        PYTHONUNBUFFERED="1",  # complete logs, even from a process ended by a signal
        DAGSTER_HOME=str(home),
        DAGSTER_DAEMON_HEARTBEAT_TOLERANCE="120",
        FAIRSTREAM_PG_HOST=PG.host,
        FAIRSTREAM_PG_PORT=str(PG.port),
        FAIRSTREAM_PG_USER=PG.user,
        FAIRSTREAM_PG_PASSWORD=PG.password,
        FAIRSTREAM_PG_DB=database,
        FAIRSTREAM_FIRST_MONTH=FIRST,
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(warehouse),
        FAIRSTREAM_SENSOR_INTERVAL_SECONDS=str(SENSOR_INTERVAL_SECONDS),
        FAIRSTREAM_DUCKDB_MEMORY_LIMIT="1GB",
        **TEST_SETTINGS,
    )
    services = DagsterServices(env, root)
    stop_notes: list[str] = []
    try:
        services.start(ready=lambda: wait_for_graphql(services))
        for service in services.services:  # else SIGTERM would do nothing (see dagster_services)
            # The exec wrapper resets the signals a moment after it starts: poll, bounded.
            deadline = time.monotonic() + 15
            while ignored_signals(service.pid) & 0x4002 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not ignored_signals(service.pid) & 0x4002, f"{service.name} ignores SIGINT/SIGTERM"
        wait_until_loaded(services)
        yield Deployment(services, env, landing, Lake(warehouse), database)
    finally:
        try:
            stop_notes = services.stop()
        finally:
            with connect_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for note in stop_notes:  # a service that needed SIGKILL: worth knowing, not a failure of the data
        warnings.warn(note)


class Deployment:
    def __init__(self, services: DagsterServices, env: dict, landing: Path, lake: Lake, database: str):
        self.services, self.env, self.landing, self.lake, self.database = services, env, landing, lake, database
        self.gql = services.graphql
        self.summaries: dict[str, dict] = {}

    def wait_for(self, what, probe, timeout, interval=1.0):
        return self.services.wait_for(what, probe, timeout, interval)

    def runs(self, **filters) -> list[dict]:
        """Runs matching a RunsFilter (``pipelineName``, ``tags`` as a dict, ``runIds``), oldest first."""
        if "tags" in filters:
            filters["tags"] = [{"key": k, "value": v} for k, v in filters["tags"].items()]
        result = self.gql(RUNS_QUERY, {"filter": filters})["runsOrError"]
        assert result["__typename"] == "Runs", result
        runs = [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in result["results"]]
        return sorted(runs, key=lambda r: r["creationTime"])

    def run_failure(self, run_id: str) -> str:
        """The error messages of a run's event log (for assertion messages)."""
        data = self.gql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run { status eventConnection(limit: 500) {
                 events { __typename ... on MessageEvent { message }
                          ... on ErrorEvent { error { message } } } } } } }""",
            {"id": run_id},
        )["runOrError"]
        events = data.get("eventConnection", {}).get("events", [])
        lines = [
            f"{e['__typename']}: {e.get('message', '')} {((e.get('error') or {}).get('message') or '')[:800]}"
            for e in events
            if "Failure" in e["__typename"] or "Error" in e["__typename"] or e.get("error")
        ]
        return f"run {run_id} {data.get('status')}:\n" + "\n".join(lines[-15:])

    def assert_succeeded(self, runs: list[dict]) -> None:
        for run in runs:
            assert run["status"] == "SUCCESS", f"{self.run_failure(run['runId'])}\n{self.services.logs()}"

    def sensor(self) -> dict:
        data = self.gql(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
                 ... on Sensor { name minIntervalSeconds sensorState { id status
                     typeSpecificData { ... on SensorData { lastTickTimestamp lastCursor } }
                     ticks(limit: 5) { tickId status timestamp skipReason runIds error { message } } } }
                 ... on Error { message } } }""",
            {"s": SENSOR_SELECTOR},
        )["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return data


# -- lake checks ----------------------------------------------------------------------------------


def assert_october_opens_from_september(lake: Lake) -> None:
    """Every October opening balance is September's closing balance, and the manifests agree."""
    sept, octo = lake.parquet_glob("payee_statements", SEPT), lake.parquet_glob("payee_statements", OCT)
    mismatches, carried, payees = duckdb.sql(
        f"""SELECT count(*) FILTER (WHERE coalesce(o.opening_balance_cents, 0) <> coalesce(s.closing_balance_cents, 0)),
                   coalesce(sum(s.closing_balance_cents), 0), count(*)
            FROM read_parquet('{sept}', hive_partitioning = false) s
            FULL OUTER JOIN read_parquet('{octo}', hive_partitioning = false) o USING (payee_id)"""
    ).fetchall()[0]
    assert payees > 0
    assert mismatches == 0, f"{mismatches} of {payees} payees open October with another balance than September closed"
    assert carried > 0, "no balance carried from September: the opening/closing comparison would prove nothing"
    october = lake.manifest("payee_statements", OCT)
    assert october["opening_from"] == f"payee_statements {SEPT}"
    assert october["previous_statements_hash"] == lake.content_hash("payee_statements", SEPT), (
        "October was computed from other September statements than the ones in the lake"
    )


def manifest_mtime(lake: Lake, asset: str, month: str) -> float:
    return (lake.partition_dir(asset, month) / "_manifest.json").stat().st_mtime


# -- 1. the landing-zone sensor -------------------------------------------------------------------


def test_sensor_computes_a_complete_month_and_recomputes_it_after_a_late_file(deployment):
    d = deployment
    sensor = d.sensor()
    assert sensor["minIntervalSeconds"] == SENSOR_INTERVAL_SECONDS, "FAIRSTREAM_SENSOR_INTERVAL_SECONDS did not reach the code location"
    assert sensor["sensorState"]["status"] == "STOPPED"
    started = d.gql(
        "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename "
        "... on Sensor { sensorState { id status } } ... on Error { message } } }",
        {"s": SENSOR_SELECTOR},
    )["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
    state_id = started["sensorState"]["id"]

    # The sensor sees an empty landing zone first, then the month appears (the generator writes
    # each day's _SUCCESS last, so the month is complete only when the last day is written).
    d.wait_for("a first sensor tick", lambda: d.sensor()["sensorState"]["ticks"], 60)
    summary = generate_month(d.landing, FIRST, users=USERS, seed=SEED, events=EVENTS).to_dict()

    def runs_of_first_month():
        return d.runs(pipelineName=JOB, tags={"dagster/partition": FIRST})

    def finished(count):
        def probe():
            runs = runs_of_first_month()
            return runs if len(runs) >= count and all(r["status"] in TERMINAL_RUN for r in runs) else None

        return probe

    (first,) = d.wait_for(f"the sensor's run of {FIRST} to finish", finished(1), RUN_TIMEOUT)
    d.assert_succeeded([first])
    assert first["tags"]["dagster/sensor_name"] == SENSOR
    assert first["tags"]["fairstream/trigger"] == SENSOR
    manifest = d.lake.manifest("clean_plays", FIRST)
    assert manifest["clean_plays"] == summary["expected_clean_plays"]
    assert manifest["rows_read"] == summary["rows_written"]

    # A late file in one day folder of the month, by a user billed that month, on a catalog track.
    # Written under a hidden name and renamed into place, so no tick sees half a file.
    user = pq.read_table(d.landing / "subscriptions" / f"month={FIRST}", columns=["user_id"])["user_id"][0].as_py()
    track = pq.read_table(d.landing / "catalog" / "tracks.parquet", columns=["track_id"])["track_id"][0].as_py()
    hidden = Landing(d.landing).events(
        "2026-08-15", [("late-2026-08-15-1", user, track, "2026-08-15 12:00", 185_000)], name=".late-0.tmp"
    )
    hidden.rename(hidden.with_name("late-0.parquet"))

    # The first run computed and closed the month: the late file restates its earnings, and its
    # statements stay exactly as they were closed.
    assert d.lake.exists("period_close", FIRST)
    closed_statements = (d.lake.partition_dir("payee_statements", FIRST) / "part-00000.parquet").read_bytes()
    first_run, second = d.wait_for(f"a second run of {FIRST} to finish", finished(2), RUN_TIMEOUT)
    assert first_run["runId"] == first["runId"]
    d.assert_succeeded([second])
    assert second["tags"]["dagster/sensor_name"] == SENSOR
    assert second["tags"]["fairstream/purpose"] == "restatement"
    assert second["tags"]["fairstream/landing_state"] != first["tags"]["fairstream/landing_state"]
    manifest = d.lake.manifest("clean_plays", FIRST)
    assert manifest["clean_plays"] == summary["expected_clean_plays"] + 1
    assert manifest["rows_read"] == summary["rows_written"] + 1
    earnings = d.lake.manifest("payee_earnings", FIRST)
    assert earnings["input_fingerprint"] == LandingZone(d.landing).month_fingerprint(FIRST)
    assert earnings["run_id"] == second["runId"]
    assert (d.lake.partition_dir("payee_statements", FIRST) / "part-00000.parquet").read_bytes() == closed_statements

    # The next evaluation finds the month settled and asks for nothing more; its cursor holds the
    # landing state of the second run.
    def up_to_date_tick():
        ticks = d.sensor()["sensorState"]["ticks"]
        return [t for t in ticks if t["timestamp"] > second["endTime"] and t["status"] == "SKIPPED"
                and f"{FIRST}: up to date" in (t["skipReason"] or "")]

    (tick, *_) = d.wait_for(f"a tick saying {FIRST} is up to date", up_to_date_tick, 60)
    state = d.wait_for("the sensor state to record that tick", lambda: sensor_state_settled(d, tick["timestamp"]), 30)
    requested = json.loads(state["typeSpecificData"]["lastCursor"])["requested"]
    assert requested[FIRST].replace(":", ".")[:63] == second["tags"]["fairstream/landing_state"]

    assert state["id"] == state_id
    stop_sensor(d, state_id)
    assert len(runs_of_first_month()) == 2, "the sensor requested more runs than the two landing states"


def sensor_state_settled(d: Deployment, after: float = 0.0) -> dict | None:
    """The sensor's state once no tick is in flight and the last tick (at or after ``after``) is recorded.

    The daemon writes a finished tick first and the sensor's state (cursor, last tick) just after,
    from a fresh read of that state: a stop landing between the two is overwritten with RUNNING.
    """
    state = d.sensor()["sensorState"]
    ticks = state["ticks"]
    last = state["typeSpecificData"]["lastTickTimestamp"] or 0.0
    if ticks and ticks[0]["status"] != "STARTED" and last >= max(after, ticks[0]["timestamp"]):
        return state
    return None


def stop_sensor(d: Deployment, state_id: str, attempts: int = 5) -> None:
    """stopSensor (it takes the instigation state id), until it holds.

    A tick in flight when the stop lands writes the sensor's state back as RUNNING (Dagster writes
    the state after the tick, from its own earlier read); the longer a tick takes (a loaded
    machine), the likelier. So: stop, wait for the state to settle, then watch it stay STOPPED for
    two sensor intervals (no tick can start after a stop it has read); stop again if a tick
    overwrote it.
    """
    seen = []
    for _ in range(attempts):
        stopped = d.gql(
            "mutation($id: String!) { stopSensor(id: $id) { __typename "
            "... on StopSensorMutationResult { instigationState { status } } ... on Error { message } } }",
            {"id": state_id},
        )["stopSensor"]
        assert stopped["__typename"] == "StopSensorMutationResult", stopped
        assert stopped["instigationState"]["status"] == "STOPPED"
        d.wait_for("the sensor to be quiet after stopSensor", lambda: sensor_state_settled(d), 60)
        time.sleep(2 * SENSOR_INTERVAL_SECONDS)
        state = d.wait_for("the sensor to be quiet", lambda: sensor_state_settled(d), 60)
        seen.append(state["status"])
        if state["status"] == "STOPPED":
            return
    raise AssertionError(f"stopSensor did not hold after {attempts} stops ({seen}):\n{d.services.logs()}")


# -- 2. a job backfill from the CLI ---------------------------------------------------------------

CLI_BACKFILL = [
    "job", "backfill", "-w", "workspace.yaml", "-l", LOCATION, "-r", REPOSITORY,
    "-j", JOB, "--partitions", f"{SEPT},{OCT}", "--noprompt",
]


def test_cli_job_backfill_computes_september_then_october(deployment):
    d = deployment
    for month in (SEPT, OCT):
        d.summaries[month] = generate_month(d.landing, month, users=USERS, seed=SEED, events=EVENTS).to_dict()

    try:
        cli = subprocess.run(
            [str(BIN / "dagster"), *CLI_BACKFILL], env=d.env, cwd=REPO, capture_output=True, text=True, timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"dagster job backfill did not return within 180 s: {exc.stdout}\n{exc.stderr}") from exc
    assert cli.returncode == 0, f"{cli.stdout[-2000:]}\n{cli.stderr[-4000:]}"
    match = re.search(r"Launched backfill job `(\w+)`", cli.stdout)
    assert match, cli.stdout
    backfill_id = match.group(1)

    def both_finished():
        runs = d.runs(tags={"dagster/backfill": backfill_id})
        return runs if len(runs) == 2 and all(r["status"] in TERMINAL_RUN for r in runs) else None

    runs = d.wait_for(f"both runs of backfill {backfill_id} to finish", both_finished, 2 * RUN_TIMEOUT)
    for month in (SEPT, OCT):  # the stopped sensor did not compute the new months on its own
        assert [r["runId"] for r in d.runs(tags={"dagster/partition": month})] == [
            r["runId"] for r in runs if r["tags"]["dagster/partition"] == month
        ]
    d.assert_succeeded(runs)
    by_month = {r["tags"]["dagster/partition"]: r for r in runs}
    assert set(by_month) == {SEPT, OCT}
    assert all(r["jobName"] == JOB for r in runs)
    assert by_month[SEPT]["endTime"] <= by_month[OCT]["startTime"], (
        f"October started at {by_month[OCT]['startTime']} before September ended at {by_month[SEPT]['endTime']}"
    )
    # The same order in the runs table of the instance's database.
    with connect_admin(d.database) as db:
        times = {
            run_id: (start, end)
            for run_id, start, end in db.execute(
                "SELECT run_id, start_time, end_time FROM runs WHERE run_id IN (%s, %s)",
                (by_month[SEPT]["runId"], by_month[OCT]["runId"]),
            ).fetchall()
        }
    assert times[by_month[SEPT]["runId"]][1] <= times[by_month[OCT]["runId"]][0], times
    cli_backfill = d.gql(
        "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {"
        " status isAssetBackfill partitionNames } } }",
        {"id": backfill_id},
    )["partitionBackfillOrError"]
    assert cli_backfill == {"status": "COMPLETED", "isAssetBackfill": False, "partitionNames": [SEPT, OCT]}

    for month in (SEPT, OCT):
        assert d.lake.manifest("clean_plays", month)["clean_plays"] == d.summaries[month]["expected_clean_plays"]
    assert_october_opens_from_september(d.lake)


# -- 3. an asset backfill from GraphQL ------------------------------------------------------------


def test_graphql_asset_backfill_of_the_payout_chain(deployment):
    d = deployment
    assert d.lake.exists("payee_statements", OCT), "needs the months computed by the CLI backfill test"
    nodes = d.gql(
        """query($r: RepositorySelector!) { repositoryOrError(repositorySelector: $r) {
             ... on Repository { assetNodes { assetKey { path } groupName isPartitioned } } } }""",
        {"r": REPO_SELECTOR},
    )["repositoryOrError"]["assetNodes"]
    payouts = sorted(n["assetKey"]["path"][0] for n in nodes if n["groupName"] == "payouts")
    assert {"user_streams", "flagged_users", "segment_pools", "track_earnings", "payee_earnings",
            "payee_statements"} <= set(payouts), payouts

    launched_at = time.time()
    result = d.gql(
        """mutation($b: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $b) { __typename
             ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }""",
        {
            "b": {
                "assetSelection": [{"path": [key]} for key in payouts],
                "partitionNames": [SEPT, OCT],
                "title": "payout chain 2026-09..2026-10 (test_daemon_end_to_end)",
            }
        },
    )["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]

    def backfill():
        return d.gql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
                 ... on PartitionBackfill { status isAssetBackfill numPartitions error { message }
                     runs { runId status } }
                 ... on Error { message } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]

    final = d.wait_for(
        f"asset backfill {backfill_id} to end",
        lambda: (b := backfill())["__typename"] == "PartitionBackfill" and b["status"] in TERMINAL_BACKFILL and b,
        BACKFILL_TIMEOUT,
        interval=2.0,
    )
    runs = d.runs(tags={"dagster/backfill": backfill_id})
    assert final["status"] == "COMPLETED_SUCCESS", (
        f"{final}\n" + "\n".join(d.run_failure(r["runId"]) for r in runs if r["status"] != "SUCCESS")
        + f"\n{d.services.logs()}"
    )
    assert final["isAssetBackfill"]
    assert runs, "an asset backfill that launched no run"
    d.assert_succeeded(runs)
    assert {r["tags"]["dagster/partition"] for r in runs} == {SEPT, OCT}

    # Both months were closed by the CLI backfill: this one restates their earnings and leaves their
    # statements and adjustments exactly as they were closed.
    for month in (SEPT, OCT):
        assert d.lake.exists("period_close", month)
        for asset in payouts:
            if asset in ("payee_statements", "payee_adjustments"):
                assert manifest_mtime(d.lake, asset, month) < launched_at, f"closed {asset} {month} was rewritten"
            else:
                assert manifest_mtime(d.lake, asset, month) > launched_at, f"{asset} {month} was not recomputed"
    assert manifest_mtime(d.lake, "payee_statements", SEPT) < manifest_mtime(d.lake, "payee_statements", OCT)
    assert_october_opens_from_september(d.lake)
