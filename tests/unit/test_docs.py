"""The docs are true where a machine can tell: links resolve, named settings exist.

- every relative link in README.md and docs/**/*.md points at an existing file, and its
  ``#anchor`` (if any) at a heading of that file (GitHub's slugs);
- every setting the docs name exists in the settings model (controller/app/settings.py):
  ``section.key`` in inline code, ``[section]`` tables with ``key = value`` lines in TOML
  blocks, and ``STREETLIGHT_SECTION__KEY`` environment variables.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from controller.config.settings import Settings
from controller.inventory.schemas import LampTypeCreate

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)\s*([A-Za-z0-9_+-]*)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"^([a-z][a-z0-9_]*)((?:\.[a-z_][a-z0-9_]*)+)$")
ENV = re.compile(r"\bSTREETLIGHT_([A-Z0-9_]+)\b")
TOML_TABLE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(?:#.*)?$")
TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")

OTHER_ENV = {
    # environment variables that are not settings, and the file that reads each
    "STREETLIGHT_CONFIG": "controller/app/cli.py",  # the settings file itself
    "STREETLIGHT_PYTHON": "deploy/dbenv.sh",  # the backup and restore scripts' interpreter
    "STREETLIGHT_TEST_PG_DSN": "tests/conftest.py",
    "STREETLIGHT_TEST_BROKER": "tests/integration/conftest.py",
    "STREETLIGHT_TEST_TASK_DUMP_S": "tests/conftest.py",
    "STREETLIGHT_TEST_CHROMIUM": "tests/browser/conftest.py",
    "STREETLIGHT_FIWARE_SCHEMAS": "tests/support/ngsi_broker.py",  # the fake broker's schemas
    "STREETLIGHT_TEST_ORION_URL": "tests/integration/test_ngsi_push.py",  # the opt-in Orion-LD
}
DASHBOARD_ENV = "STREETLIGHT_DASHBOARD_"
"""The dashboard's own options, read from the environment by api/dashboard/config.py."""


@dataclass(frozen=True)
class Mention:
    doc: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}: {self.text}"


def _lines_outside_code(doc: Path) -> list[tuple[int, str]]:
    out, fenced = [], False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def _code_blocks(doc: Path, languages: set[str]) -> list[list[tuple[int, str]]]:
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] | None = None
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if fence and current is None:
            current = [] if fence.group(2).lower() in languages else None
            if current is None:
                current = [(-1, "")]  # a block of another language: skipped
            continue
        if fence:
            if current and current[0][0] != -1:
                blocks.append(current)
            current = None
            continue
        if current is not None:
            current.append((number, line))
    return blocks


# --- links --------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _lines_outside_code(doc):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links() -> list[tuple[Mention, str]]:
    out = []
    for doc in DOCS:
        for number, line in _lines_outside_code(doc):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                out.append((Mention(doc, number, target), target))
    return out


def broken(mention: Mention, target: str) -> str | None:
    path_part, _, anchor = target.partition("#")
    path = (mention.doc.parent / path_part).resolve() if path_part else mention.doc
    if not path.exists():
        return f"{mention}: no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{mention}: no heading #{anchor} in {path.relative_to(ROOT)}"
    return None


def test_the_docs_have_links_to_check() -> None:
    assert len(relative_links()) > 10


def test_every_relative_link_resolves() -> None:
    problems = [p for mention, target in relative_links() if (p := broken(mention, target))]
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_a_broken_link_and_anchor() -> None:
    readme = ROOT / "README.md"
    assert broken(Mention(readme, 1, "docs/protocol.md"), "docs/protocol.md") is not None
    assert broken(Mention(readme, 1, "docs/api.md#nowhere"), "docs/api.md#nowhere") is not None
    assert broken(Mention(readme, 1, "docs/api.md#errors"), "docs/api.md#errors") is None


# --- settings -----------------------------------------------------------------------------


def _model_of(annotation: Any) -> Any:
    """The settings model inside ``annotation`` (``X``, ``X | None``, ``list[X]``), or it."""
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def setting_exists(path: list[str]) -> bool:
    """Whether ``path`` (``["controller", "mqtt_stale_after_s"]``) names a setting."""
    node: Any = Settings
    for part in path:
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            # below a leaf: only a free-form dict (faults.severities.<type>) has keys
            return typing.get_origin(node) is dict
        field = node.model_fields.get(part)
        if field is None:
            return False
        node = _model_of(field.annotation)
    return True


def _is_code_path(token: str) -> bool:
    """A file (``site.toml``) or a Python name (``controller.faults.data.act_by_hand``): its
    first two parts are a package or module of this repository."""
    if re.search(r"\.(md|py|toml|json|db|csv|geojson|html|yaml|yml|txt|sh|service)$", token):
        return True
    head = ROOT.joinpath(*token.split(".")[:2])
    return head.is_dir() or head.with_suffix(".py").exists()


def env_is_read(name: str) -> bool:
    """Whether an environment variable that is not a setting is read where it is said to be."""
    if name.startswith(DASHBOARD_ENV):
        field = name.removeprefix(DASHBOARD_ENV).lower()
        source = (ROOT / "api/dashboard/config.py").read_text(encoding="utf-8")
        return f'raw("{field}"' in source
    reader = OTHER_ENV.get(name)
    return reader is not None and name in (ROOT / reader).read_text(encoding="utf-8")


def named_settings() -> list[tuple[Mention, list[str]]]:
    sections = set(Settings.model_fields)
    out: list[tuple[Mention, list[str]]] = []
    for doc in DOCS:
        for number, line in _lines_outside_code(doc):
            for code in INLINE_CODE.findall(line):
                for token in re.split(r"[\s=,()]+", code):
                    match = DOTTED.match(token)
                    if match and match.group(1) in sections and not _is_code_path(token):
                        out.append((Mention(doc, number, token), token.split(".")))
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for name in ENV.findall(line):
                path = [p.lower() for p in name.split("__")]
                out.append((Mention(doc, number, f"STREETLIGHT_{name}"), path))
        for block in _code_blocks(doc, {"toml"}):
            tables = [
                m.group(1).split(".")[0] for _, line in block if (m := TOML_TABLE.match(line))
            ]
            if not sections & set(tables):
                continue  # a TOML file of another kind (a Modbus register-map profile)
            table: list[str] = []
            for number, line in block:
                if header := TOML_TABLE.match(line):
                    table = header.group(1).split(".")
                    out.append((Mention(doc, number, f"[{header.group(1)}]"), table))
                elif key := TOML_KEY.match(line):
                    path = [*table, key.group(1)]
                    out.append((Mention(doc, number, ".".join(path)), path))
    return out


BARE_DEFAULT = re.compile(r"`([a-z][a-z0-9_]*)` \(([^)]*\bby default\b)")


def _setting_fields() -> dict[str, list[str]]:
    """Every settings field name (at any depth), with the dotted paths that hold it."""
    out: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: list[str]) -> None:
        for name, field in model.model_fields.items():
            out.setdefault(name, []).append(".".join([*prefix, name]))
            inner = _model_of(field.annotation)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                walk(inner, [*prefix, name])

    walk(Settings, [])
    return out


def unqualified_settings() -> list[str]:
    """Names that read as settings but are none.

    - a bare name said to have a value "by default" (``counters_max_age_s`` (60 s by
      default)) must be a settings field;
    - a bare name that is a settings field without its section-name prefix, and not a field
      itself (``stale_after_s`` for ``controller.mqtt_stale_after_s``), is a setting misnamed.
    """
    fields = _setting_fields()
    problems = []
    for doc in DOCS:
        for number, line in _lines_outside_code(doc):
            for name, _ in BARE_DEFAULT.findall(line):
                if name not in fields:
                    problems.append(f"{Mention(doc, number, name)}: has a default but no setting")
            for code in INLINE_CODE.findall(line):
                if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", code) or code in fields:
                    continue
                holders = [p for s in Settings.model_fields for p in fields.get(f"{s}_{code}", [])]
                if holders:
                    problems.append(f"{Mention(doc, number, code)}: did you mean {holders}?")
    return problems


def test_no_setting_is_named_by_a_name_the_configuration_refuses() -> None:
    problems = unqualified_settings()
    assert not problems, "\n".join(problems)


def test_the_docs_name_settings_to_check() -> None:
    kinds = {m.text[0] for m, _ in named_settings()}
    assert len(named_settings()) > 50
    assert {"S", "["} <= kinds  # environment variables and TOML tables are found


def test_every_setting_named_in_the_docs_exists() -> None:
    problems = [
        str(m)
        for m, path in named_settings()
        if not setting_exists(path)
        and not (m.text.startswith("STREETLIGHT_") and env_is_read(m.text))
    ]
    assert not problems, "settings the configuration refuses:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "exists"),
    [
        (["controller", "mqtt_stale_after_s"], True),
        (["alerts", "webhooks", "secret"], True),
        (["alerts", "email", "rules", "digest_interval_min"], True),
        (["faults", "severities", "lamp_failure"], True),
        (["modbus", "counters_max_age_s"], False),
        (["mqtt", "stale_after_s"], False),
        (["site", "latitude", "x"], False),
    ],
)
def test_setting_exists(path: list[str], exists: bool) -> None:
    assert setting_exists(path) is exists


def test_environment_variables_that_are_not_settings_must_be_read() -> None:
    assert env_is_read("STREETLIGHT_DASHBOARD_MAP_POLL_S")
    assert env_is_read("STREETLIGHT_CONFIG")
    assert not env_is_read("STREETLIGHT_DASHBOARD_MAP_POLL_MS")
    assert not env_is_read("STREETLIGHT_MQTT_STALE_AFTER_S")


# --- lamp type defaults -------------------------------------------------------------------


def documented_lamp_defaults() -> dict[str, float]:
    """The defaults of docs/faults.md's lamp type table (``| `field` | 15 % | ...``)."""
    out = {}
    for line in (ROOT / "docs/faults.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([a-z_]+)` \| ([0-9.]+)\b", line)
        if match and match.group(1) in LampTypeCreate.model_fields:
            out[match.group(1)] = float(match.group(2))
    return out


def test_lamp_type_defaults_in_the_docs_are_the_apis() -> None:
    documented = documented_lamp_defaults()
    assert set(documented) >= {"rated_power_w", "power_tolerance_pct", "min_dim_level_pct"}
    for name, value in documented.items():
        assert LampTypeCreate.model_fields[name].default == value, name
