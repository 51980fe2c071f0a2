"""``ccbb scan … --compare previous.json [--fail-on broken]``: what changed since a report
saved earlier (``--format json``), printed after the scan; exit code 3 with ``--fail-on
broken`` when a product newly broke (for CI pipelines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scanner.changes import SINCE_FILE, Changes, compare, to_text
from scanner.scan import ScanReport

EXIT_NEWLY_BROKEN = 3
FAIL_ON = ("broken",)

# user-facing messages (plain English, one place)
NOT_READABLE = "--compare {path}: cannot read it ({error})"
NOT_A_REPORT = (
    "--compare {path}: not a report of ccbb scan --format json ({error}); save one with "
    "`ccbb scan SITE --format json -o previous.json`"
)
OTHER_SITE = (
    "--compare {path}: that report is of {site} ({marketplace}), not of {want_site} "
    "({want_marketplace}); compare two scans of the same site and marketplace"
)


class CompareError(Exception):
    """The previous report cannot be used; the message says why and what to do."""


def load_previous(path: str) -> dict[str, Any]:
    """The previous report's JSON, checked to have the shape ``compare`` reads."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(NOT_READABLE.format(path=path, error=exc.strerror or exc)) from None
    except ValueError as exc:
        raise CompareError(NOT_A_REPORT.format(path=path, error=f"invalid JSON: {exc}")) from None
    if not isinstance(data, dict) or not isinstance(data.get("products"), list):
        raise CompareError(NOT_A_REPORT.format(path=path, error='no "products" list'))
    try:
        for p in data["products"]:
            p["asin"], p["marketplace"], p["status"]
            for link in p.get("links", ()):
                link["page"], link["href"]
    except (KeyError, TypeError) as exc:
        raise CompareError(NOT_A_REPORT.format(path=path, error=f"a product lacks {exc}")) from None
    return data


def check_same_site(path: str, previous: dict[str, Any], site: str, marketplace: str) -> None:
    their = (previous.get("site"), previous.get("marketplace"))
    if None not in their and their != (site, marketplace):
        raise CompareError(
            OTHER_SITE.format(
                path=path,
                site=their[0],
                marketplace=their[1],
                want_site=site,
                want_marketplace=marketplace,
            )
        )


def changes_since(previous: dict[str, Any], report: ScanReport) -> tuple[Changes, str]:
    """(the changes, their text as the CLI prints it)."""
    changes = compare(previous, report)
    since = SINCE_FILE.format(finished=str(previous.get("finished_at", "?"))[:16].replace("T", " "))
    return changes, to_text(changes, since)


def exit_code(changes: Changes, fail_on: str | None) -> int:
    return EXIT_NEWLY_BROKEN if fail_on == "broken" and changes.any_broken else 0
