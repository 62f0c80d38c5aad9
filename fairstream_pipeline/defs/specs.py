"""How every domain declares its monthly assets: the monthly partitions, the owners and the kinds
(DuckDB over Parquet in the lake, unless said otherwise) in one place; each asset adds its key,
group, code version, deps and what its step needs (retries, pool, checks...)."""

import dagster as dg

from fairstream_pipeline.defs.partitions import monthly_partitions

OWNERS = ["team:royalties"]
LAKE_KINDS = {"duckdb", "parquet"}


def _monthly(group: str, code_version: str, kinds: set[str]) -> dict:
    return {
        "partitions_def": monthly_partitions,
        "group_name": group,
        "owners": OWNERS,
        "kinds": kinds,
        "code_version": code_version,
    }


def monthly_asset(*, group: str, code_version: str, kinds: set[str] = LAKE_KINDS, **kwargs):
    """``@dg.asset`` for a monthly asset (its description is the function's docstring); ``kwargs``
    go to ``dg.asset`` (deps, retry_policy, check_specs...)."""
    return dg.asset(**_monthly(group, code_version, kinds), **kwargs)


def monthly_spec(
    key: str, description: str, deps: list, *, group: str, code_version: str, kinds: set[str] = LAKE_KINDS
) -> dg.AssetSpec:
    """One asset of a monthly ``dg.multi_asset``."""
    return dg.AssetSpec(key, deps=deps, description=description, **_monthly(group, code_version, kinds))


def monthly_graph_asset(*, name: str, group: str, ins: list[str], outs: dict[str, dg.AssetOut]):
    """``@dg.graph_multi_asset`` for monthly lake assets computed by a graph of steps that pass paths,
    never data: the upstream assets ``ins`` are inputs of no value."""
    return dg.graph_multi_asset(
        name=name,
        partitions_def=monthly_partitions,
        group_name=group,  # (an AssetOut's group_name is ignored by graph_multi_asset)
        ins={asset: dg.AssetIn(dagster_type=dg.Nothing) for asset in ins},
        outs=outs,
    )


def lake_out(description: str, code_version: str) -> dg.AssetOut:
    """An output of a graph asset that lives in the lake (its steps pass nothing but paths)."""
    return dg.AssetOut(
        description=description, owners=OWNERS, kinds=LAKE_KINDS, code_version=code_version, dagster_type=dg.Nothing
    )


def monthly_check(asset: str, description: str, *, blocking: bool = False):
    """``@dg.asset_check`` for a check of a monthly asset, on the same monthly partitions; a blocking
    check stops the asset's downstream steps when it fails."""
    return dg.asset_check(asset=asset, description=description, blocking=blocking, partitions_def=monthly_partitions)
