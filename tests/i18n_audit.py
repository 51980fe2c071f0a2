"""Finds words people would read that are not marked for translation (the extraction only sees
marked messages, so an unmarked sentence would be missed by the catalogue checks).

- Templates: each template is parsed with the app's Jinja2 environment; its literal text (what
  is outside ``{{ … }}`` and ``{% trans %}``) is put back together with a placeholder for each
  expression and read as HTML. A text node, or a visible attribute (``title``, ``alt``,
  ``placeholder``, ``aria-label``, a button's ``value``, a ``<meta>`` description), that still
  holds a word fails, unless the word is in ``ALLOWED_WORDS``. String literals inside an
  expression shown as text (``{{ "off" if … }}``) count too, unless they are the argument of a
  translating call (``_()``, ``gettext``, ``ngettext``).
- Python: in the modules that hold what people read, every string literal that reads like prose
  (two words or more) must be the argument of ``_()``, ``N_()``, ``ngettext()`` or
  ``lazy_gettext()``, or a docstring, or a logging call's; the exceptions are listed with their
  reason in ``ENGLISH_ON_PURPOSE``."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import Environment, nodes

# Words that are the same in both languages: names, codes, units (a text made only of these,
# placeholders, digits and punctuation needs no translation).
_ALLOWED = """
    Click Bank ClickClickBankBank ClickBank Amazon PayPal Slack Creators API JSON CSV ASIN ASINs
    UTC ID REF IDs HTTP HTTPS URL URLs SKU Webhook Credential Secret Version OK amzn to
    Français English FAQ
"""
ALLOWED_WORDS = frozenset(_ALLOWED.split())
VISIBLE_ATTRIBUTES = frozenset({"title", "alt", "placeholder", "aria-label", "aria-description"})
TRANSLATING_CALLS = frozenset({"_", "gettext", "ngettext", "N_", "lazy_gettext", "pgettext"})
LOGGERS = frozenset({"log", "logger", "logging", "self.log"})
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
WORD = re.compile(r"[^\W\d_]{2,}")
PLACEHOLDER = re.compile(r"\ue000(\d+)\ue001")


@dataclass(frozen=True)
class Finding:
    where: str  # "web/templates/billing.html" or "billing/messages.py:12"
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text!r}"


# addresses, domains, paths and partner tags read the same in every language
CODES = re.compile(
    r"https?://\S*"  # addresses
    r"|\b[A-Z][a-z]+/[A-Za-z_]+\b"  # time zones: Europe/Paris
    r"|\S+@\S+"  # e-mail addresses
    r"|\b[\w-]+(?:\.[\w-]+)+\b"  # domains: example.com
    r"|(?<!\w)/\S*"  # paths: /dp/
    r"|\b\w+-\d{2}\b"  # partner tags: yourname-20
)


def words_needing_translation(text: str) -> list[str]:
    return [w for w in WORD.findall(CODES.sub(" ", text)) if w not in ALLOWED_WORDS]


# ---- templates ---------------------------------------------------------------------------


def _is_translating_call(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name in TRANSLATING_CALLS
    )


def _shown_literals(expr: nodes.Node) -> Iterator[str]:
    """String literals of an expression that may end up on the page as they are: not those
    given to a translating call, nor those used as a key, an argument or a filter's input."""
    if _is_translating_call(expr):
        return
    if isinstance(expr, nodes.Const) and isinstance(expr.value, str):
        yield expr.value
        return
    if isinstance(expr, nodes.CondExpr):
        yield from _shown_literals(expr.expr1)
        if expr.expr2 is not None:
            yield from _shown_literals(expr.expr2)
        return
    if isinstance(expr, nodes.Getitem) and isinstance(expr.node, nodes.Dict):
        for pair in expr.node.items:  # {"email": "E-mail", …}[kind]: the values are shown
            yield from _shown_literals(pair.value)
        return
    if isinstance(expr, nodes.Concat | nodes.Add):
        for child in expr.iter_child_nodes():
            yield from _shown_literals(child)
        return
    if isinstance(expr, nodes.MarkSafe | nodes.MarkSafeIfAutoescape):
        yield from _shown_literals(expr.expr)


class _Flattener:
    """A template's literal text with a placeholder for each expression it outputs."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.expressions: list[nodes.Node] = []

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    self.parts.append(child.data)
                else:
                    self.parts.append(f"\ue000{len(self.expressions)}\ue001")
                    self.expressions.append(child)
            return
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Stmt | nodes.Template | nodes.Helper):
                self.visit(child)


class _TextReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        values = dict(attrs)
        for name, value in attrs:
            shown = name in VISIBLE_ATTRIBUTES
            shown |= name == "value" and values.get("type") in ("submit", "button", "reset")
            shown |= tag == "meta" and name == "content" and values.get("name") == "description"
            if shown and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def template_findings(env: Environment, name: str, where: str) -> list[Finding]:
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    flat = _Flattener()
    flat.visit(env.parse(source))
    reader = _TextReader()
    reader.feed("".join(flat.parts))
    reader.close()
    found: list[Finding] = []
    for text in reader.texts:
        for index in PLACEHOLDER.findall(text):
            for literal in _shown_literals(flat.expressions[int(index)]):
                if words_needing_translation(literal):
                    found.append(Finding(where, literal))
        literal_text = " ".join(PLACEHOLDER.sub(" ", text).split())
        if words_needing_translation(literal_text):
            found.append(Finding(where, literal_text))
    return found


def templates_findings(env: Environment, root: Path, label: str) -> list[Finding]:
    found: list[Finding] = []
    for path in sorted(root.rglob("*.html")):
        name = path.relative_to(root).as_posix()
        found += template_findings(env, name, f"{label}/{name}")
    return found


# ---- Python ------------------------------------------------------------------------------


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        owner = func.value
        base = owner.id if isinstance(owner, ast.Name) else ""
        return f"{base}.{func.attr}"
    return ""


def _exempt_ranges(tree: ast.AST) -> list[tuple[int, int, int, int]]:
    """Source ranges whose strings need no translation: docstrings, what is given to a
    translating call (already marked), what goes to the log, and dictionary keys."""
    spans: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                spans.append(body[0])
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            head, _, attr = name.rpartition(".")
            translating = name in TRANSLATING_CALLS or attr in TRANSLATING_CALLS
            logging_call = head in LOGGERS and attr in LOG_LEVELS
            if translating or logging_call:
                spans.append(node)
        elif isinstance(node, ast.Dict):  # keys name things (a label's colour), never shown
            spans.extend(k for k in node.keys if isinstance(k, ast.Constant))
    return [
        (n.lineno, n.col_offset, n.end_lineno or n.lineno, n.end_col_offset or 0)
        for n in spans
        if hasattr(n, "lineno")
    ]


def _inside(node: ast.AST, ranges: Iterable[tuple[int, int, int, int]]) -> bool:
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return any((a, b) <= start and end <= (c, d) for a, b, c, d in ranges)


PROSE = re.compile(r"[^\W\d_]{2,}[ \u00a0]+[^\W\d_]{2,}")


def python_findings(
    path: Path, where: str, english_on_purpose: frozenset[str], *, strict: bool = False
) -> list[Finding]:
    """Unmarked prose of a module; ``strict`` (a module of messages and nothing else): every
    literal with a word that needs translating, even a single word."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exempt = _exempt_ranges(tree)
    found: list[Finding] = []
    seen_fstring_parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
            seen_fstring_parts.update(id(v) for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in seen_fstring_parts:
                continue
            text = node.value
        else:
            continue
        worded = bool(words_needing_translation(text)) if strict else bool(PROSE.search(text))
        if not worded or _inside(node, exempt):
            continue
        if text in english_on_purpose:
            continue
        found.append(Finding(f"{where}:{node.lineno}", text))
    return found
