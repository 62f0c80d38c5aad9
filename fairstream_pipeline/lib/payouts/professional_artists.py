"""ACPS v1's professional artists as the month publishes them: each artist's counted music streams
and listeners against the thresholds, with the verdict (``docs/payout-rules.md``, rule 11)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.tables import Rows, first_rows
from fairstream_pipeline.lib.payouts.rules import PayoutRules


def name_professional_artists(con: duckdb.DuckDBPyConnection, rules: PayoutRules, artists: Path | None) -> None:
    """Replace the engine's ``professional_artists`` (artist indexes of ``artists``, the month's
    artist dictionary) with the published table: ``artist_id`` (null for an artist the catalog
    names only), ``artist_name``, ``counted_streams``, ``listeners``, the two thresholds and
    ``professional``; one row per artist with a counted music stream, by name."""
    names = (
        f"(SELECT artist_index, artist_id, artist_name FROM {read_parquet(str(artists))})" if artists is not None
        else "(SELECT NULL::INTEGER AS artist_index, NULL::VARCHAR AS artist_id, NULL::VARCHAR AS artist_name WHERE false)"
    )
    con.execute(
        f"""
        ALTER TABLE professional_artists RENAME TO coded_professional_artists;
        CREATE TEMP TABLE professional_artists AS
        SELECT d.artist_id, d.artist_name, p.streams AS counted_streams, p.listeners,
               {rules.acps_pro_min_streams}::BIGINT AS pro_min_streams,
               {rules.acps_pro_min_listeners}::BIGINT AS pro_min_listeners,
               p.professional
        FROM coded_professional_artists p LEFT JOIN {names} d ON d.artist_index = p.artist_id
        ORDER BY d.artist_name, d.artist_id;
        DROP TABLE coded_professional_artists;
        """
    ).fetchall()
    (missing,) = con.execute("SELECT count(*) FROM professional_artists WHERE artist_name IS NULL").fetchall()[0]
    if missing:
        raise ValueError(f"{missing} artists of the shards are missing from the artist dictionary {artists}")


@dataclass(frozen=True)
class ProfessionalSummary:
    artists: int  # artists with a counted music stream
    professional: int
    professional_streams: int  # their counted music streams
    music_streams: int  # every artist's counted music streams


def professional_summary(con: duckdb.DuckDBPyConnection) -> ProfessionalSummary:
    """Totals of the published ``professional_artists``."""
    return ProfessionalSummary(
        *con.execute(
            """SELECT count(*), count(*) FILTER (WHERE professional),
                      coalesce(sum(counted_streams) FILTER (WHERE professional), 0)::BIGINT,
                      coalesce(sum(counted_streams), 0)::BIGINT
               FROM professional_artists"""
        ).fetchall()[0]
    )


def artists_near_the_line(con: duckdb.DuckDBPyConnection, limit: int = 20) -> Rows:
    """The artists closest to the thresholds, from either side (the ones who ask), with their
    streams and listeners against the thresholds."""
    return first_rows(
        con,
        """SELECT artist_name, artist_id, counted_streams, pro_min_streams, listeners, pro_min_listeners, professional
           FROM professional_artists
           ORDER BY least(abs(counted_streams - pro_min_streams)::DOUBLE / greatest(pro_min_streams, 1),
                          abs(listeners - pro_min_listeners)::DOUBLE / greatest(pro_min_listeners, 1)),
                    artist_name""",
        limit,
    )
