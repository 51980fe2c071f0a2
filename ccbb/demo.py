"""``ccbb demo``: the bundled demo site and the bundled Amazon sandbox, served on loopback, and
the scan configuration that reaches them; no Amazon account, Redis or database needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ccbb.local_scan import scan_site
from ccbb.sandbox.amazon_api import Catalogue, running_sandbox
from ccbb.sandbox.demo_site import generate_site, running_site
from scanner.net import NetworkPolicy, parse_connect_to
from scanner.scan import ScanReport
from scanner.settings import AmazonAccess, ScanConfig


@asynccontextmanager
async def demo_environment(pages: int = 60) -> AsyncIterator[tuple[ScanConfig, AmazonAccess]]:
    """Serve a generated site of ``pages`` pages and the sandbox API while inside; yield what a
    scan of that site needs."""
    site = generate_site(pages=pages)
    catalogue = Catalogue.from_dict(site.catalogue)
    credential = catalogue.credentials[0]
    async with running_site(site) as served, running_sandbox(catalogue) as sandbox:
        network = NetworkPolicy(connect_to=parse_connect_to(served.connect_to))
        config = ScanConfig(
            site=site.base_url,
            marketplace=credential.marketplaces[0],
            partner_tag=site.partner_tag,
            cloak_prefixes=site.cloak_prefixes,
            network=network,
        )
        access = AmazonAccess(
            credential_id=credential.credential_id,
            credential_secret=credential.credential_secret,
            version=credential.version,
            partner_tag=site.partner_tag,
            marketplace=credential.marketplaces[0],
            api_host=sandbox.url,
            auth_endpoint=sandbox.auth_endpoint,
            tps=credential.tps,
        )
        yield config, access


async def run_demo(pages: int = 60, show_progress: bool = True) -> ScanReport:
    async with demo_environment(pages) as (config, access):
        return await scan_site(config, access, show_progress=show_progress, concurrency=None)
