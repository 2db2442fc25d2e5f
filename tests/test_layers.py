"""The shape of the code, checked: no import cycle, a pure core, a product that does not import its demo.

A small AST walk over bot/, commands/ and handlers/ (every import statement, function-local ones included,
since those are how a cycle hides): module → the project modules it imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "commands", "handlers")

# No I/O, no clock, no AWS or Slack: the state machine, the judge and what they compute with.
CORE = (
    "bot.canary",
    "bot.judge",
    "bot.judge_cache",
    "bot.evidence",
    "bot.intents",
    "bot.model",
    "bot.units",
    "bot.ticks",
    "bot.preflight",
)
ADAPTERS = ("bot.aws", "bot.store", "bot.slack_", "bot.outbox", "bot.reconciler", "bot.service", "bot.app")
OUTSIDE_WORLD = ("boto3", "botocore", "slack_sdk", "slack_bolt", "apscheduler", "waitress", "sqlite3")
# What only the demo and the tests use; the product must not import it (it stays out of the image).
DEMO_ONLY = ("canary_demo", "canary_demo.fakes", "canary_demo.seed")


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the project modules (and outside top-level packages) it imports."""
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for imported in _imported(name, path):
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
            elif not target:
                targets.add(imported.split(".")[0])
        edges[name] = frozenset(targets)
    return edges


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, frozenset()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p if p.endswith("_") else f"{p}.") for p in prefixes)


def test_there_is_no_import_cycle_in_the_project() -> None:
    assert _cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset()}) == [["a", "b"]]


def test_the_core_imports_no_adapter_no_aws_and_no_slack() -> None:
    for name in CORE:
        imported = graph()[name]
        assert not [m for m in imported if _under(m, ADAPTERS)], name
        assert not [m for m in imported if m.split(".")[0] in OUTSIDE_WORLD], name


def test_the_product_does_not_import_the_demo_or_the_fakes() -> None:
    product = [name for name in graph() if not _under(name, DEMO_ONLY)]
    offenders = {name: sorted(m for m in graph()[name] if _under(m, DEMO_ONLY)) for name in product}
    assert {name: found for name, found in offenders.items() if found} == {}


# The use cases talk to the world only through ports: no AWS, Slack or SQLite adapter, no Slack surface.
USE_CASE_MAY_NOT_IMPORT = (
    "bot.aws",
    "bot.store",
    "bot.slack_",
    "bot.outbox",
    "bot.app",
    "bot.service",
    "commands",
    "handlers",
)


def test_the_use_cases_reach_the_world_only_through_ports() -> None:
    use_cases = [name for name in graph() if _under(name, ("bot.usecases",))]
    assert len(use_cases) >= 8, use_cases
    for name in use_cases:
        imported = graph()[name]
        assert not [m for m in imported if _under(m, USE_CASE_MAY_NOT_IMPORT)], name
        assert not [m for m in imported if m.split(".")[0] in OUTSIDE_WORLD], name


def test_soak_watch_and_alarm_intake_do_not_reach_through_the_service() -> None:
    for name in ("bot.soak", "bot.watch", "bot.alarm_responder", "bot.scheduler"):
        assert "bot.service" not in graph()[name], name
