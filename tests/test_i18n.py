"""Languages: the catalogues against a fresh extraction (every message of the templates and of
the web app's Python code translated into French; no stale catalogue), the choice of the
language, and Babel's formats of numbers, dates and money in both languages."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from web import i18n

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "web" / "locale"
PYBABEL = str(Path(sys.executable).parent / "pybabel")
# the command README's "Languages" section gives (-o changed to a temporary file)
EXTRACT = [PYBABEL, "extract", "-F", "babel.cfg", "-k", "lazy_gettext", "--no-location",
           "--sort-output", "--omit-header"]  # fmt: skip


def _ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {m.id for m in catalog if m.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The messages the code and the templates hold today, extracted as README says."""
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run([*EXTRACT, "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    with out.open("rb") as f:
        return read_po(f)


def _catalog(locale: str) -> Catalog:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=locale)


def test_extraction_finds_the_templates_and_the_python_messages(extracted: Catalog) -> None:
    ids = _ids(extracted)
    assert "Log in" in ids  # base.html, login.html
    assert "Frequently asked questions" in ids  # site/faq.html
    assert "Wrong e-mail or password." in ids  # web/auth.py, _()
    assert "Removed" in ids  # web/i18n.py, N_()
    assert ("%(n)s scan credit", "%(n)s scan credits") in ids  # a plural


def test_every_message_has_a_french_translation(extracted: Catalog) -> None:
    fr = _catalog("fr")
    missing = []
    for message in extracted:
        if not message.id:
            continue
        found = fr.get(message.id)
        strings = () if found is None else found.string
        strings = (strings,) if isinstance(strings, str) else tuple(strings)
        if found is None or found.fuzzy or not strings or not all(strings):
            missing.append(message.id)
    assert not missing, f"not translated into French (see README, Languages): {missing}"


def test_translations_keep_their_placeholders() -> None:
    """Babel's checks: a translation with another %(name)s than its message would fail (or
    show a raw placeholder) when the page is shown."""
    for locale in i18n.LOCALES:
        problems = [
            (m.id, [str(e) for e in errors]) for m, errors in _catalog(locale).check() if errors
        ]
        assert not problems, problems


def test_catalogues_are_not_stale(extracted: Catalog) -> None:
    """The committed template and catalogues hold exactly what the code holds: a message
    added, changed or removed without running the update commands fails here."""
    with (LOCALE_DIR / "messages.pot").open("rb") as f:
        committed = _ids(read_po(f))
    fresh = _ids(extracted)
    assert committed == fresh, {"not in messages.pot": fresh - committed,
                                "gone from the code": committed - fresh}  # fmt: skip
    for locale in i18n.LOCALES:
        ids = _ids(_catalog(locale))
        assert ids == fresh, {locale: {"missing": fresh - ids, "obsolete": ids - fresh}}


def test_a_missing_or_older_mo_is_compiled_from_the_po(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    po = tmp_path / "fr" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
                  'msgid "Log in"\nmsgstr "Connexion"\n', encoding="utf-8")  # fmt: skip
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        assert i18n.translations("fr").gettext("Log in") == "Connexion"
    finally:
        i18n.translations.cache_clear()


# ---- which language -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "en"),
        ({"accept_language": "fr-FR,fr;q=0.9,en;q=0.8"}, "fr"),
        ({"accept_language": "fr-BE"}, "fr"),
        ({"accept_language": "de-DE,de;q=0.9,fr;q=0.5,en;q=0.4"}, "fr"),
        ({"accept_language": "de-DE,en;q=0.5,fr;q=0.4"}, "en"),
        ({"accept_language": "en;q=0.3, fr;q=0.7"}, "fr"),
        ({"accept_language": "fr;q=0, en"}, "en"),
        ({"accept_language": "*"}, "en"),
        ({"accept_language": "xx;q=bad"}, "en"),
        ({"cookie": "fr", "accept_language": "en"}, "fr"),
        ({"account": "en", "cookie": "fr", "accept_language": "fr"}, "en"),
        ({"asked": "fr", "account": "en"}, "fr"),
        ({"asked": "de", "account": "fr"}, "fr"),  # not one of ours: ignored
        ({"asked": "FR"}, "fr"),
    ],
)
def test_the_language_of_a_page(kwargs: dict[str, str], expected: str) -> None:
    assert i18n.choose(**kwargs) == expected


# ---- formats ------------------------------------------------------------------------------


def test_numbers_dates_and_money_follow_the_language() -> None:
    when = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    i18n.use("fr")
    try:
        assert i18n.number(1719).replace("\u202f", " ") == "1 719"
        assert i18n.day(date(2026, 12, 1)) == "1 déc. 2026"
        assert i18n.money(Decimal("19")) == "19,00 $"
        assert i18n.money(Decimal("1234.5")).replace("\u202f", " ") == "1 234,50 $"
        assert i18n.percent(0.425, 1).replace("\u202f", " ").replace("\xa0", " ") == "42,5 %"
        assert i18n.moment(when) == "1 déc. 2026 14:05 UTC"
        assert i18n.status_word("removed") == "Supprimé"
        assert i18n.status_word("out_of_stock") == "Stock épuisé"
        assert i18n.status_word("available") == "Disponible"
        assert i18n.status_word("error") == "Erreur"
        assert i18n.gettext("Log in") == "Connexion"
    finally:
        i18n.use("en")
    assert i18n.number(1719) == "1,719"
    assert i18n.day(date(2026, 12, 1)) == "Dec 1, 2026"
    assert i18n.money(Decimal("19")) == "$19.00"
    assert i18n.moment(when).replace("\u202f", " ") == "Dec 1, 2026 2:05 PM UTC"
    assert i18n.status_word("out_of_stock") == "Out of stock"
    assert i18n.status_word("something_new") == "something_new"  # unknown: as it is


def test_every_phase_the_engine_writes_has_words() -> None:
    """The dashboard names a scan's phase in the page's language: a phase added to the engine
    or the jobs without words in web.i18n.PHASE_WORDS fails here."""
    written = set()
    for path in [*(ROOT / "scanner").glob("*.py"), ROOT / "ccbb" / "jobs.py"]:
        text = path.read_text(encoding="utf-8")
        written |= set(re.findall(r'phase\s*=\s*"([^"]+)"', text))
        written |= {w for pair in re.findall(r'phase\s*=\s*"([^"]+)" if .+? else "([^"]+)"', text)
                    for w in pair}  # fmt: skip
    assert written, "no phase found: has the engine's way of writing them changed?"
    assert written <= set(i18n.PHASE_WORDS), written - set(i18n.PHASE_WORDS)
    i18n.use("fr")
    try:
        assert i18n.phase_word("crawling") == "exploration"
        assert i18n.state_word("running") == "en cours"
    finally:
        i18n.use("en")
    assert i18n.state_word("running") == "running"  # English pages unchanged
