"""The allocator keeps what parsing frees (scanner.allocator): no page faults per page."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

# parses the same page 200 times in a fresh process and prints the page faults per parse
PARSE_AGAIN_AND_AGAIN = r"""
import json, resource, sys
from selectolax.lexbor import LexborHTMLParser
from tests.sites import page
if sys.argv[1] == "tuned":
    from scanner.allocator import keep_freed_memory
    assert keep_freed_memory()
body = page(*(f"/post-{i}/" for i in range(300)), body="<p>" + "words " * 4000 + "</p>").encode()
for _ in range(20):  # the allocator settles
    LexborHTMLParser(body)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    LexborHTMLParser(body)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps((after - before) / 200))
"""


def faults_per_parse(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PARSE_AGAIN_AND_AGAIN, mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(json.loads(done.stdout))


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc"
)
def test_parsing_pages_again_and_again_costs_no_page_faults() -> None:
    assert faults_per_parse("default") >= 5  # what the tuning is for: memory taken again
    assert faults_per_parse("tuned") < 0.5
