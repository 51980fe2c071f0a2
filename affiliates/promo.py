"""The affiliate's promotional material, in English and French: text links and banners (SVG
files of the standard IAB sizes, served from /static/promo/), each as the HTML to paste with
the affiliate's referral link already in it. Pure functions: the page shows what they give."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

LANGUAGES = ("en", "fr")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}

# (width, height, name): leaderboard, banner, medium rectangle, wide skyscraper, mobile banner
SIZES = ((728, 90, "leaderboard"), (468, 60, "banner"), (300, 250, "medium rectangle"),
         (160, 600, "wide skyscraper"), (320, 50, "mobile banner"))  # fmt: skip

TEXT_LINKS = {
    "en": (
        "ClickClickBankBank: find the broken Amazon links on your site",
        "Check every Amazon affiliate link of your site in minutes",
        "Out-of-stock Amazon products cost you commissions: find them with ClickClickBankBank",
    ),
    "fr": (
        "ClickClickBankBank : trouvez les liens Amazon cassés de votre site",
        "Vérifiez tous les liens d'affiliation Amazon de votre site en quelques minutes",
        "Les produits Amazon en rupture de stock vous coûtent des commissions : trouvez-les "
        "avec ClickClickBankBank",
    ),
}
BANNER_ALT = {
    "en": "ClickClickBankBank: find the broken Amazon affiliate links on your site",
    "fr": "ClickClickBankBank : trouvez les liens d'affiliation Amazon cassés de votre site",
}
# what the banners say (the SVG files in web/static/promo/ are drawn with these words)
BANNER_WORDS = {
    "en": ("Broken Amazon links cost you commissions.", "Scan your site"),
    "fr": ("Les liens Amazon cassés vous coûtent des commissions.", "Scannez votre site"),
}


@dataclass(frozen=True)
class Material:
    kind: str  # "text" or "banner"
    language: str
    label: str  # "Text link 1", "728 × 90 leaderboard"
    html: str  # what the affiliate pastes
    image: str | None = None  # a banner's address, in the HTML
    preview: str | None = None  # the same on this server (the page's preview)
    width: int = 0
    height: int = 0


def banner_file(width: int, height: int, language: str) -> str:
    return f"banner-{width}x{height}-{language}.svg"


def text_link(link: str, text: str) -> str:
    return f'<a href="{escape(link)}" rel="sponsored">{escape(text)}</a>'


def banner(link: str, image: str, width: int, height: int, alt: str) -> str:
    return (
        f'<a href="{escape(link)}" rel="sponsored"><img src="{escape(image)}" '
        f'width="{width}" height="{height}" alt="{escape(alt)}"></a>'
    )


def material(*, link: str, base_url: str, language: str) -> list[Material]:
    """Every piece in ``language``, for the referral ``link`` (``base_url``: our site, where
    the banners are)."""
    out = [
        Material("text", language, f"{n}", text_link(link, text))
        for n, text in enumerate(TEXT_LINKS[language], 1)
    ]
    for width, height, name in SIZES:
        image = f"{base_url.rstrip('/')}/static/promo/{banner_file(width, height, language)}"
        html = banner(link, image, width, height, BANNER_ALT[language])
        preview = f"/static/promo/{banner_file(width, height, language)}"
        out.append(Material("banner", language, name, html, image, preview, width, height))
    return out
