"""Every word a person reads is marked for translation. The catalogue tests (test_i18n.py)
compare what the extraction finds with the French catalogue; this file finds what the
extraction cannot see: template text outside ``{% trans %}`` / ``_()``, and prose in the
Python modules of user-facing messages that no ``_()`` / ``N_()`` marks (tests/i18n_audit.py
says how). Both lists must be empty; the first tests prove the checks do fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import DictLoader

from tests import i18n_audit
from web.templating import templates

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = {"web/templates": ROOT / "web" / "templates"}

# Where people read Python-made words: the web app's pages and forms, the messages of plans,
# credits, the affiliate program and schedules, the product's mails, alerts and Slack messages.
PYTHON_MESSAGE_MODULES = sorted(
    {
        *(ROOT / "web").glob("*.py"),
        ROOT / "billing" / "messages.py",
        ROOT / "affiliates" / "messages.py",
        ROOT / "notify" / "messages.py",
        ROOT / "notify" / "alerts.py",
        ROOT / "notify" / "hooks.py",  # the Slack message's words
        ROOT / "ccbb" / "dispatch.py",  # a schedule's outcome
        ROOT / "ccbb" / "schedule_rules.py",  # a schedule's checks
    }
)
# Modules of messages and nothing else: even a one-word literal must be marked.
STRICT_MODULES = frozenset({"billing/messages.py", "affiliates/messages.py"})
# The JSON API is a stable English contract (README, "Languages"): its modules are not read.
ENGLISH_MODULES = frozenset(
    {
        "web/api.py",
        "web/credits_api.py",
        "web/monitoring_api.py",
        "web/openapi.py",
        "web/affiliate_api.py",
        "web/ins_writer.py",
    }
)
# Prose in the modules above that stays English, with the reason.
ENGLISH_ON_PURPOSE = frozenset(
    {
        # affiliates/messages.py: what PayPal's own mail to a paid affiliate says (one batch, one
        # subject for all: English)
        "Your ClickClickBankBank affiliate commissions",
        "ClickClickBankBank affiliate commissions, payout of {day}",
        # web/auth.py: the password compared against when the e-mail has no account
        "not a password of anyone",
        # web/clickbank.py: answers to ClickBank's servers, comments sent to its ticket API
        "not a ClickBank notification",
        "not configured",
        "body too large",
        "Refund asked from the Billing page",
        "Cancelled from the Billing page",
        # notify/alerts.py: the webhook's JSON event (an English contract; mails and Slack
        # messages are written from its kinds and counts in the user's language) and what
        # the job returns to arq
        "nothing changed",
        "Since scan #{…}",
        "Since the last scan",
        "Your week: {…} sites scanned",
        "Your week: no scans",
        "no such delivery",
        "delivered already",
        # web/site.py: the home page's sample report, product names
        "Anker PowerCore 10000",
        "Logitech MX Master 3S",
        "Kindle Paperwhite",
        # web/password_reset.py: the signing salt of reset links
        "reset password",
        # Starlette's 404 detail, compared with
        "Not Found",
        # web/fields.py: a piece of a library's error, searched for
        "too long",
        # web/charts.py, notify/hooks.py: defaults of pure functions (callers pass theirs)
        "Products by status",
        "Open the report",
        # ccbb/dispatch.py, ccbb/schedule_rules.py: what a job returns to arq, an assertion;
        # a schedule described for the API (pages describe it: web.monitoring_page.describe)
        "taken up already",
        "no due time found",
        "every day {…}",
        "on day {…} of every month {…}",
    }
)
SVG_OR_HTML_MARKUP = ("<svg", "<circle", "<path", "<!doctype", "<p", "<ul", "<li", "<a ")


def _python_findings() -> list[i18n_audit.Finding]:
    found = []
    for path in PYTHON_MESSAGE_MODULES:
        where = path.relative_to(ROOT).as_posix()
        if where in ENGLISH_MODULES or not path.exists():
            continue
        strict = where in STRICT_MODULES
        for f in i18n_audit.python_findings(path, where, ENGLISH_ON_PURPOSE, strict=strict):
            if f.text.lstrip().lower().startswith(SVG_OR_HTML_MARKUP):
                continue  # markup around translated words, not words
            found.append(f)
    return found


# ---- the checks can fail ------------------------------------------------------------------

UNTRANSLATED = {
    # web/templates/checkout.html and delete_scan.html before this branch translated them
    "checkout.html": (
        '{% extends "base.html" %}{% block title %}Checkout · ClickClickBankBank{% endblock %}'
        "{% block content %}<p><strong>{{ item.price }}</strong> — {{ item.what }}</p>"
        '<p><a href="/billing">Back to Billing</a></p>{% endblock %}'
    ),
    "delete.html": (
        "<p>Scan #{{ scan.id }} of {{ scan.site }}.{% if active %} It is still "
        "{{ scan.state }}.{% endif %}</p>"
        '<button title="Delete for good">{{ _("Delete") }}</button>'
        '<span>{{ "off" if x else _("on") }}</span><input placeholder="{{ _(\'Name\') }}">'
    ),
    "fine.html": (
        "{% trans n=3 %}{{ n }} scans{% endtrans %} · {{ _('Billing') }} · ClickClickBankBank"
        "<script>var word = 'Hello there';</script><span>yourname-20 · example.com</span>"
    ),
}


def test_the_template_check_finds_text_left_unmarked() -> None:
    env = templates.env.overlay(loader=DictLoader(UNTRANSLATED))
    found = {f.text for name in UNTRANSLATED for f in i18n_audit.template_findings(env, name, name)}
    assert found == {
        "Checkout · ClickClickBankBank",
        "Back to Billing",
        "Scan # of . It is still .",
        "Delete for good",  # a visible attribute
        "off",  # a literal the expression shows
    }, found


def test_the_python_check_finds_prose_left_unmarked(tmp_path: Path) -> None:
    module = tmp_path / "messages.py"
    module.write_text(
        '"""A docstring is for developers."""\n'
        "import logging\n"
        "from web.i18n import N_, _\n"
        "log = logging.getLogger(__name__)\n"
        'DONE = "Your scan is done."\n'
        'MARKED = N_("Your scan is queued.")\n'
        "def page(n):\n"
        '    log.warning("the log stays English %s", n)\n'
        '    return _("Shown now") + f"{n} credits left" + "sku_name"\n',
        encoding="utf-8",
    )
    found = [f.text for f in i18n_audit.python_findings(module, "messages.py", frozenset())]
    assert found == ["Your scan is done.", "{…} credits left"], found
    module.write_text('BUY = "Buy"\nCURRENT = N_("Your plan")\nKEY = "sku_name"\n')
    found = [f.text for f in i18n_audit.python_findings(module, "m.py", frozenset(), strict=True)]
    assert found == ["Buy", "sku_name"], found  # strict: one word is enough


# ---- the product --------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(TEMPLATE_DIRS))
def test_no_template_text_outside_trans(label: str) -> None:
    found = i18n_audit.templates_findings(templates.env, TEMPLATE_DIRS[label], label)
    assert not found, "text outside {% trans %} / _() (README, Languages):\n" + "\n".join(
        map(str, found)
    )


def test_no_python_message_left_unmarked() -> None:
    found = _python_findings()
    assert not found, "prose outside _() / N_() (README, Languages):\n" + "\n".join(map(str, found))
