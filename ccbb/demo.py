"""``ccbb demo``: a real scan of the bundled demo site against the bundled Amazon sandbox, both
served on loopback; no Amazon account, Redis or database needed."""

from __future__ import annotations

from ccbb.sandbox.amazon_api import Catalogue, running_sandbox
from ccbb.sandbox.demo_site import generate_site, running_site
from scanner.net import NetworkPolicy, make_session, parse_connect_to
from scanner.ratelimit import LocalRateLimiter
from scanner.scan import ScanReport, run_scan
from scanner.settings import AmazonAccess, ScanConfig


async def run_demo(pages: int = 60, show_progress: bool = True) -> ScanReport:
    from ccbb.cli import progress_bar  # the CLI owns how progress is shown
    from scanner.crawl import Progress

    site = generate_site(pages=pages)
    catalogue = Catalogue.from_dict(site.catalogue)
    credential = catalogue.credentials[0]
    async with running_site(site) as served, running_sandbox(catalogue) as sandbox:
        network = NetworkPolicy(allow_private=True, connect_to=parse_connect_to(served.connect_to))
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
        progress = Progress()
        async with make_session(network) as session, progress_bar(progress, show_progress):
            return await run_scan(
                config,
                access,
                session=session,
                limiter=LocalRateLimiter(access.tps),
                progress=progress,
            )
