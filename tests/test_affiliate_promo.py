"""The promotional material on the Affiliate page: text links and banners in English and French,
the member's referral link already in them, as HTML to copy (escaped in a textarea); the
banners are served by us at the size the HTML says, with alt text."""

# ruff: noqa: F811  (the fixtures are imported from test_affiliates)
from __future__ import annotations

import html
import re
from pathlib import Path

from starlette.testclient import TestClient

from affiliates import promo
from ccbb.settings import Settings
from store import affiliates as store_aff
from tests.test_affiliate_admin import login
from tests.test_affiliates import app_settings, client, db, new_affiliate  # noqa: F401

STATIC = Path(__file__).resolve().parent.parent / "web" / "static" / "promo"


def test_every_banner_exists_at_its_size_with_a_title() -> None:
    for lang in promo.LANGUAGES:
        for w, h, _ in promo.SIZES:
            svg = (STATIC / promo.banner_file(w, h, lang)).read_text()
            assert f'width="{w}" height="{h}" viewBox="0 0 {w} {h}"' in svg
            title = re.search(r"<title>(.*?)</title>", svg)
            assert title is not None and html.unescape(title.group(1)) == promo.BANNER_ALT[lang]
            assert "<script" not in svg and "href" not in svg  # an image, nothing more
    assert "Scannez votre site" in (STATIC / "banner-300x250-fr.svg").read_text()


def test_the_html_to_copy_holds_the_link_and_is_escaped() -> None:
    link = 'https://ccbb.example/?ref=ABCDEFGHJK&x="<b>'
    [first, *_] = promo.material(link=link, base_url="https://ccbb.example", language="fr")
    assert first.html.startswith(
        '<a href="https://ccbb.example/?ref=ABCDEFGHJK&amp;x=&quot;&lt;b&gt;"'
    )
    assert 'rel="sponsored"' in first.html and "</a>" in first.html


def test_the_affiliate_page_offers_the_material_in_both_languages(
    client: TestClient, app_settings: Settings
) -> None:
    aff = new_affiliate(client, app_settings, "promoter@example.com")
    login(client, "promoter@example.com")
    page = client.get("/affiliate").text
    link = f"https://ccbb.example/?ref={aff.ref_id}"
    areas = re.findall(r'<textarea readonly rows="\d" class="promo-html" id="([^"]+)">(.*?)</textarea>',
                       page, re.S)  # fmt: skip
    ids = {i for i, _ in areas}
    for lang in promo.LANGUAGES:
        assert {f"promo-{lang}-text-{n}" for n in (1, 2, 3)} <= ids
        assert {f"promo-{lang}-{w}x{h}" for w, h, _ in promo.SIZES} <= ids
    assert len(areas) == 2 * (3 + len(promo.SIZES))
    for _, text in areas:
        assert "<a " not in text and text.startswith("&lt;a href=&#34;")  # shown, not rendered
        pasted = html.unescape(text)
        assert f'href="{link}"' in pasted
    banner = html.unescape(dict(areas)["promo-fr-728x90"])
    assert 'src="https://ccbb.example/static/promo/banner-728x90-fr.svg"' in banner
    assert (
        'width="728" height="90"' in banner
        and f'alt="{html.escape(promo.BANNER_ALT["fr"])}"' in banner
    )
    r = client.get("/static/promo/banner-728x90-fr.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert '<p lang="en"><a href="' in page  # the text links previewed
    # a revoked member has no material to spread
    db(app_settings, lambda s: store_aff.set_status(s, ref_id=aff.ref_id, status="revoked"))
    assert 'class="promo-html"' not in client.get("/affiliate").text
