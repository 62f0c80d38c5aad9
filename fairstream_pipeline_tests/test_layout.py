"""The layout rules the README states, checked on the source: ``lib/`` never reaches Dagster or the
wiring, and ``lib/`` mirrors the domains of ``defs/``."""

import ast
from pathlib import Path

import fairstream_pipeline

PACKAGE = Path(fairstream_pipeline.__file__).parent
LIB = PACKAGE / "lib"
DEFS = PACKAGE / "defs"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_names(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from x import y`` gives
    ``x`` and, when it is a module of ours, ``x.y``). Relative imports are resolved against
    ``package`` (default: the package ``path`` is in)."""
    names: set[str] = set()
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if module_path(f"{base}.{alias.name}"))
    return names


def reachable_imports(start: Path) -> dict[str, str]:
    """Every module reachable from ``start`` through our own modules, each with the module of ours
    that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    visited: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in visited:
            continue
        visited.add(path)
        for name in imported_names(path):
            seen.setdefault(name, module_name(path))
            if name.startswith("fairstream_pipeline") and (own := module_path(name)) is not None:
                todo.append(own)
    return seen


def test_lib_reaches_no_dagster_and_no_wiring():
    offenders = []
    for path in sorted(LIB.rglob("*.py")):
        for name, importer in reachable_imports(path).items():
            top = name.split(".")[0]
            wiring = name.startswith(("fairstream_pipeline.defs", "fairstream_pipeline.definitions"))
            if top in {"dagster", "dagster_celery", "dagster_postgres", "dagster_graphql", "dagster_shared"} or wiring:
                offenders.append(f"{module_name(path)} reaches {name} (imported by {importer})")
    assert offenders == []


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path):
    # the checker itself must be able to fail: a throwaway module, read as if it were in lib/payouts
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n\n\ndef later():\n    import dagster as dg\n    from . import sibling\n"
        "    from ..lake import storage\n    from .rules import PPM\n"
    )
    assert imported_names(sample, package="fairstream_pipeline.lib.payouts") == {
        "os",
        "dagster",  # inside a function
        "fairstream_pipeline.lib.payouts",  # from . import sibling (not a module of ours)
        "fairstream_pipeline.lib.lake",
        "fairstream_pipeline.lib.lake.storage",  # from ..lake import storage: a module of ours
        "fairstream_pipeline.lib.payouts.rules",  # from .rules import PPM (PPM is not a module)
    }
    # and the walk follows our modules to what they import
    assert any(name.startswith("dagster") for name in reachable_imports(PACKAGE / "definitions.py"))


def test_lib_mirrors_the_defs_domains():
    domains = {p.name for p in DEFS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    lib_packages = {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert domains == {"ingestion", "payouts", "close", "payments", "notifications", "alerting"}
    # every wiring domain has its logic under the same name; lib adds the shared lake helpers
    # and the application database
    assert lib_packages == domains | {"lake", "app_db"}


def test_jobs_schedules_and_sensors_live_in_their_domain():
    top_level = sorted(p.name for p in DEFS.glob("*.py"))
    # only what every domain shares sits at the top of defs/
    assert top_level == ["__init__.py", "execution.py", "metadata.py", "partitions.py", "resources.py", "retries.py", "specs.py"]


def readme_layout() -> list[Path]:
    """The paths the README's Layout block names, resolved by their indentation."""
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## Layout\n", 1)[1].split("```\n", 2)[1]
    paths, parents = [], {}
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        names = []
        for token in line.split():
            if not (token.endswith("/") or token.endswith(".py")):
                break
            names.append(token)
        if not names or (depth and depth - 1 not in parents):
            continue  # a continuation line of a description
        base = parents[depth - 1] if depth else PACKAGE.parent
        for name in names:
            paths.append(base / name.rstrip("/"))
        if names[0].endswith("/"):
            parents = {k: v for k, v in parents.items() if k < depth} | {depth: base / names[0].rstrip("/")}
    return paths


def test_the_readme_layout_matches_the_tree():
    named = readme_layout()
    assert [p for p in named if not p.exists()] == []
    # every package of defs/ and lib/ is named
    packages = {p.parent for root in (DEFS, LIB) for p in root.glob("*/__init__.py")}
    assert sorted(str(p) for p in packages - set(named)) == []
    assert PACKAGE / "lib" / "payouts" in named and PACKAGE / "defs" / "partitions.py" in named


# --- imports run one way: settings <- lib/ <- defs/ <- entry points ---------------------------------

# lib/'s shared infrastructure: it imports no lib/ domain.
LIB_INFRASTRUCTURE = {"lake", "months", "format", "assets", "markdown"}
ENTRY_POINTS = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "settings", "definitions"}


def own_imports(path: Path) -> set[str]:
    """The modules of ours that ``path`` imports directly (at the top or inside a function)."""
    return {name for name in imported_names(path) if name.startswith("fairstream_pipeline.")}


def lib_part(name: str) -> str | None:
    """``payouts`` for ``fairstream_pipeline.lib.payouts.engine``, ``format`` for ``...lib.format``."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "lib" else None


def test_settings_import_nothing_of_the_project():
    assert own_imports(PACKAGE / "settings.py") == set()


def test_lib_reaches_no_entry_point():
    offenders = [
        f"{module_name(path)} imports {name}"
        for path in sorted(LIB.rglob("*.py"))
        for name in own_imports(path)
        if name.split(".")[1] in ENTRY_POINTS | {"definitions", "sample"}
    ]
    assert offenders == []


def test_defs_import_no_entry_point():
    offenders = [
        f"{module_name(path)} imports {name}"
        for path in sorted(DEFS.rglob("*.py"))
        for name in own_imports(path)
        if name.split(".")[1] in ENTRY_POINTS
    ]
    assert offenders == []


def lib_domain_graph() -> dict[str, set[str]]:
    """Which lib/ part imports which other lib/ parts (a package or a top-level module of lib/)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(LIB.rglob("*.py")):
        part = lib_part(module_name(path))
        if part is None:
            continue
        graph.setdefault(part, set()).update(
            other for name in own_imports(path) if (other := lib_part(name)) not in (None, part)
        )
    return graph


def test_lib_infrastructure_imports_no_domain():
    graph = lib_domain_graph()
    assert {part: sorted(graph.get(part, set()) - LIB_INFRASTRUCTURE) for part in LIB_INFRASTRUCTURE} == {
        part: [] for part in LIB_INFRASTRUCTURE
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of ``graph``, each as the path that closes it (found by a depth-first walk)."""
    found, state = [], {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = "open"
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                found.append(path[path.index(other):] + [other] if other in path else [node, other])
            elif other not in state:
                walk(other, [*path, other])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


def test_no_two_lib_domains_import_each_other():
    assert cycles(lib_domain_graph()) == []


def test_the_cycle_finder_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# --- one way to register definitions --------------------------------------------------------------


def test_only_the_code_location_uses_definitions_factories():
    """Every defs module is loaded by ``dg.load_from_defs_folder``: its module-level assets, checks,
    jobs, sensors and schedules are registered because they are there; a ``@dg.definitions`` factory
    in a defs module would register only what it lists."""
    factories = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(DEFS.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for decorator in node.decorator_list
        if ast.unparse(decorator) in {"dg.definitions", "definitions", "dagster.definitions"}
    ]
    assert factories == []


def test_every_definition_under_defs_is_registered():
    import importlib

    import dagster as dg

    from fairstream_pipeline.definitions import defs

    repository = defs().get_repository_def()
    registered_assets = {key for assets in repository.assets_defs_by_key.values() for key in assets.keys}
    registered_checks = {key for checks in repository.asset_checks_defs_by_key.values() for key in checks.check_keys}
    # what dg.define_asset_job returns (an unresolved asset job; dagster exports no name for it)
    asset_job = type(dg.define_asset_job("probe", selection="probe"))
    missing = []
    for path in sorted(DEFS.rglob("*.py")):
        module = importlib.import_module(module_name(path))
        for name, value in vars(module).items():
            if isinstance(value, dg.AssetsDefinition) and value.is_executable:
                missing += [f"{name}: asset {k.to_user_string()}" for k in value.keys if k not in registered_assets]
            if isinstance(value, dg.AssetChecksDefinition):
                missing += [f"{name}: check {k.name}" for k in value.check_keys if k not in registered_checks]
            if isinstance(value, (dg.JobDefinition, asset_job)) and not repository.has_job(value.name):
                missing.append(f"{name}: job {value.name}")
            if isinstance(value, dg.SensorDefinition) and not repository.has_sensor_def(value.name):
                missing.append(f"{name}: sensor {value.name}")
            if isinstance(value, dg.ScheduleDefinition) and not repository.has_schedule_def(value.name):
                missing.append(f"{name}: schedule {value.name}")
    assert missing == []
