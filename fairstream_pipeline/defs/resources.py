"""Resources: where the landing zone and the warehouse live, and how DuckDB may use the machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_postgres import PostgresRunStorage
from pydantic import PrivateAttr

from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.app_db.store import transaction
from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.lake.month_lock import (
    FileMonthLocks,
    MonthLocked,
    PostgresMonthLocks,
)
from fairstream_pipeline.lib.payouts.rules import PayoutRules
from fairstream_pipeline.settings import env_name, get_settings


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone folder that the collectors and billing write to (FAIRSTREAM_LANDING_DIR)."""

    root: str

    def zone(self) -> LandingZone:
        return LandingZone(self.root)


class WarehouseResource(dg.ConfigurableResource):
    """The lake of monthly Parquet partitions that the assets write (FAIRSTREAM_WAREHOUSE_DIR).

    A run of a month holds the month's lock for as long as the resource lives (the whole run with
    the in-process executor, each step otherwise), whatever launched it: one run per month. The
    lock is a PostgreSQL advisory lock when the instance is on PostgreSQL, a lock file in the lake
    otherwise (fairstream_pipeline.lib.lake.month_lock). A second run fails at once, naming the holder.
    """

    root: str
    _lease: Any = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def lake(self) -> Lake:
        """The lake; what a run writes through it records the run in each version's manifest."""
        return Lake(self.root, run_id=self._run_id)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        month = run.tags.get("dagster/partition") if run is not None else None
        if not month or context.instance is None:
            return  # a sensor's evaluation, or a run that is not about one month
        instance = context.instance
        storage = instance.run_storage
        try:
            if isinstance(storage, PostgresRunStorage):
                self._lease = PostgresMonthLocks(storage.postgres_url).acquire(month, run.run_id)
            else:
                def run_finished(run_id: str) -> bool:
                    holder = instance.get_run_by_id(run_id)
                    return holder is None or holder.is_finished

                self._lease = FileMonthLocks(self.root).acquire(month, run.run_id, run_finished)
        except MonthLocked as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        self._run_id = run.run_id
        reconcile_unrecorded_versions(context, self.lake(), month)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def reconcile_unrecorded_versions(context: dg.InitResourceContext, lake: Lake, month: str) -> None:
    """Find the month's current lake versions whose run never recorded them in Dagster (it was
    killed between publishing and reporting), and record them now, saying so.

    A version is published atomically and complete, so the lake is right; the instance is what
    lags. Each one gets a materialization reported with ``reconciled`` metadata (the UI shows it on
    the asset's partition) and a warning in this run's log. Runs before the month lock is taken
    never see a half-published month: publication and the lock make this safe.
    """
    instance, run_id = context.instance, context.run.run_id
    for asset, version in sorted(lake.published(month).items()):
        try:
            writer = lake.manifest(asset, month).get("written_by_run")
        except FileNotFoundError:
            continue
        if not writer or writer == run_id:
            continue
        key = dg.AssetKey(asset)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=100
        ).records
        if any(record.run_id == writer for record in records):
            continue
        message = (
            f"reconciled: the lake's current {asset} for {month} (version {version}) was published by run "
            f"{writer}, which was stopped before it could record it; recorded now by run {run_id}"
        )
        context.log.warning(message)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key,
                partition=month,
                metadata={"reconciled": message, "version": version, "written_by_run": writer},
            )
        )


class DuckDBEngine(dg.ConfigurableResource):
    """DuckDB limits (FAIRSTREAM_DUCKDB_MEMORY_LIMIT, FAIRSTREAM_DUCKDB_THREADS, FAIRSTREAM_DUCKDB_TEMP_DIR)."""

    memory_limit: str = "4GB"
    threads: int | None = None
    temp_directory: str | None = None

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect(DuckDBSettings(self.memory_limit, self.threads, self.temp_directory))


class PayoutRulesResource(dg.ConfigurableResource):
    """The payout rule parameters (docs/payout-rules.md). Set them per run in the launchpad:
    ``resources: {payout_rules: {config: {royalty_share_ppm: 650000}}}``."""

    royalty_share_ppm: int = PayoutRules.royalty_share_ppm
    min_play_ms: int = PayoutRules.min_play_ms
    max_daily_plays_per_track: int = PayoutRules.max_daily_plays_per_track
    max_daily_streams_per_user: int = PayoutRules.max_daily_streams_per_user
    residual_policy: str = PayoutRules.residual_policy
    payout_threshold_cents: int = PayoutRules.payout_threshold_cents
    max_held_share_ppm: int = PayoutRules.max_held_share_ppm
    payout_model: str = PayoutRules.payout_model
    acps_pro_min_streams: int = PayoutRules.acps_pro_min_streams
    acps_pro_min_listeners: int = PayoutRules.acps_pro_min_listeners
    acps_pro_boost: int = PayoutRules.acps_pro_boost
    acps_active_boost: int = PayoutRules.acps_active_boost
    acps_user_stream_cap: int = PayoutRules.acps_user_stream_cap
    acps_cap_mode: str = PayoutRules.acps_cap_mode

    def rules(self) -> PayoutRules:
        return PayoutRules(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PayoutRules)})


class AppDatabaseResource(dg.ConfigurableResource):
    """The application database (FAIRSTREAM_DATABASE_URL): statements for the artist dashboard and
    the notification outbox. Pooled psycopg2 connections, one pool per process. Empty = not
    configured: the notification assets then report that nothing was published or queued."""

    url: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def ensure_schema(self) -> str:
        """Migrate to the newest schema (idempotent; concurrent callers take turns)."""
        return upgrade(self.url)

    def transaction(self):
        """A cursor in one transaction on a pooled connection (committed when the block ends)."""
        return transaction(self.url)


def env_var(field: str, default: Any = "") -> Any:
    """``dg.EnvVar`` of the setting ``field`` when its variable is set, else ``default``: Dagster
    then resolves it in the run's process, so a secret never becomes a literal in the config."""
    return dg.EnvVar(env_name(field)) if field in get_settings().model_fields_set else default


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources configured from the environment (docs/configuration.md)."""
    settings = get_settings()
    warehouse = settings.warehouse_dir
    return {
        "landing_zone": LandingZoneResource(root=settings.landing_dir),
        "warehouse": WarehouseResource(root=warehouse),
        "duckdb": DuckDBEngine(
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            temp_directory=settings.duckdb_temp_dir or str(Path(warehouse) / ".duckdb_tmp"),
        ),
        "payout_rules": PayoutRulesResource(),
        # The URL holds a password: read it from the environment at run time, never as a literal.
        "app_database": AppDatabaseResource(url=env_var("database_url")),
    }
