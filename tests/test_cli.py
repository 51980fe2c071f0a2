"""The command line as a user meets it: help, usage errors, the order of the checks, and output
piped into a command that stops reading (``| head``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ccbb.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
NO_CREDENTIALS = {"CCBB_CREDENTIAL_ID": "", "CCBB_CREDENTIAL_SECRET": ""}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def readme_scan_options() -> set[str]:
    text = README.read_text()
    section = text.split("## Scanning your site", 1)[1].split("### The report", 1)[0]
    return set(re.findall(r"--[a-z]+(?:-[a-z]+)*", section))


def test_scan_help_lists_every_option_the_readme_documents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "scan", "--help")
    assert code == 0
    documented = readme_scan_options()
    assert {"--page-workers", "--api-host", "--auth-endpoint", "--connect-to"} <= documented
    missing = sorted(option for option in documented if option not in out)
    assert missing == []


def test_the_readme_usage_block_names_every_scan_option(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "scan", "--help")
    offered = set(re.findall(r"--[a-z]+(?:-[a-z]+)*", out)) - {"--help"}
    usage = README.read_text().split("ccbb scan SITE_URL", 1)[1].split("```", 1)[0]
    assert sorted(o for o in offered if o not in usage) == []


def test_a_bad_option_prints_the_scan_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "scan", "example.com", "--bogus")
    assert code == 2
    assert out == ""
    assert err.startswith("usage: ccbb scan ")
    assert err.rstrip().endswith("ccbb scan: error: unrecognized arguments: --bogus")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "x"], "--tag 'x' does not look like a tracking ID such as yourname-20"),
        ([], "give --tag: your partner tag"),
        (["--tag", "me-20", "--tps", "0"], "--tps must be greater than 0"),
        (["--tag", "me-20", "--max-pages", "0"], "--max-pages must be at least 1"),
    ],
)
def test_argument_checks_come_before_the_credentials_check(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    for name, value in NO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "scan", "example.com", *args)
    assert code == 2
    assert message in err
    assert "credentials" not in err
    assert err.startswith("ccbb scan: error: ") and err.count("\n") == 1  # one line


def test_missing_credentials_are_still_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in NO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "scan", "example.com", "--tag", "me-20")
    assert code == 2
    assert "Amazon credentials are needed" in err


@pytest.mark.parametrize("pages", ["0", "3", "-1"])
def test_demo_with_too_few_pages_says_so_in_one_line(pages: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ccbb.cli", "demo", "--pages", pages, "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "ccbb demo: error: --pages must be at least 4 (home, about, a category, an article)"
    )
    assert done.stdout == ""


def test_output_piped_into_head_ends_silently() -> None:
    # a 60-page report as CSV is larger than a pipe's buffer: writing it meets a closed pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccbb.cli", "demo", "--quiet", "--format", "csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.startswith(b"page,")
    assert err == ""
    # 1 as Python itself exits when its output pipe is closed; 0 when the whole report was
    # already in the pipe when `head` closed it (the machine's pipe buffer and timing decide)
    assert code in (0, 1)


def test_a_scan_starts_without_the_database_layer() -> None:
    # the other commands' parsers import SQLAlchemy, Alembic and Redis (~0.5 s of start-up,
    # more on a busy machine): `ccbb scan` and `ccbb demo` need none of them
    probe = (
        "import sys\nfrom ccbb.cli import main\n"
        "for argv in (['scan', '--help'], ['demo', '--pages', '0']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'redis', 'store')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_other_commands_are_still_offered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("scan", "demo", "clickbank", "affiliates", "user", "credits"):
        assert command in out
    code, out, _ = run(capsys, "credits", "--help")
    assert code == 0
