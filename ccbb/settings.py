"""The application's one settings object, read once from the environment (and ``.env``).

Without ``DATABASE_URL`` the app uses a SQLite file in the data directory; without ``REDIS_URL``
it starts its own private Redis there (see ``ccbb.embedded``). The server key that encrypts
users' Amazon secrets comes from ``CCBB_SECRET_KEY``; in embedded mode one is made on first use
and kept in the data directory, readable by its owner only.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.clickbank_ins import secret_key_problem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), validation_alias="CCBB_DATA_DIR")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    secret_key: SecretStr | None = Field(default=None, validation_alias="CCBB_SECRET_KEY")
    # Crawl from the workers: loopback/private addresses are refused unless this is set.
    allow_private_network: bool = Field(
        default=False, validation_alias="CCBB_ALLOW_PRIVATE_NETWORK"
    )
    # Where the workers reach Amazon's Creators API (the sandbox, in tests and the demo).
    amazon_api_host: str = Field(
        default="https://creatorsapi.amazon", validation_alias="CCBB_AMAZON_API_HOST"
    )
    amazon_auth_endpoint: str | None = Field(default=None, validation_alias="CCBB_AMAZON_AUTH")
    # curl-style HOST:PORT:HOST2:PORT2 mappings for the crawler, comma-separated (tests, demo).
    connect_to_list: str = Field(default="", validation_alias="CCBB_CONNECT_TO")
    # arq queue name: several deployments may share one Redis.
    queue_name: str = Field(default="ccbb:queue", validation_alias="CCBB_QUEUE")
    # Processes fetching and parsing pages for each scan a worker runs (0: none).
    page_workers: int = Field(default=1, validation_alias="CCBB_PAGE_WORKERS")
    # Scans one worker process runs at once.
    max_scans: int = Field(default=4, validation_alias="CCBB_MAX_SCANS")
    # Scans one user may have queued or running at once (one user cannot fill the queue).
    active_scans_per_user: int = Field(default=3, validation_alias="CCBB_ACTIVE_SCANS_PER_USER")
    # JSON API calls one user may make (the `limits` library's notation: "120/minute",
    # "10/second;1000/hour"); more are answered 429 with Retry-After.
    api_rate: str = Field(default="120/minute", validation_alias="CCBB_API_RATE")
    # A worker holds a scan's lease while it runs it; a lease not renewed for this long means
    # the worker died, and the scan is started again elsewhere.
    lease_seconds: int = Field(default=15, validation_alias="CCBB_LEASE_SECONDS")
    heartbeat_seconds: float = Field(default=1.0, validation_alias="CCBB_HEARTBEAT_SECONDS")
    # Session and CSRF cookies only over HTTPS (production behind TLS).
    secure_cookies: bool = Field(default=False, validation_alias="CCBB_SECURE_COOKIES")

    # ---- web security (sessions, CSRF, limits, headers) ----
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses
    # or networks, comma-separated, "*" for any: uvicorn's --forwarded-allow-ips). Empty: none,
    # the peer's own address is the client's (the per-IP login and sign-up throttles use it).
    trusted_proxies: str = Field(default="", validation_alias="CCBB_TRUSTED_PROXIES")
    # ---- plans and credits (billing.catalogue, store.credits) ----
    # Scans spend credits (off: scans are free and the Billing page is hidden, for an operator
    # scanning only their own sites).
    credits_enabled: bool = Field(default=True, validation_alias="CCBB_CREDITS")
    # The plans catalogue (TOML); unset: the bundled billing/catalogue.toml.
    plans_file: Path | None = Field(default=None, validation_alias="CCBB_PLANS_FILE")
    # {project_id} of the credits API (/api/v2/project/{project_id}/…).
    project_id: str = Field(default="ccbb", validation_alias="CCBB_PROJECT_ID")
    # HTTP Basic merchant_id:api_key of the credits API's server methods; unset: they are 404.
    merchant_id: str | None = Field(default=None, validation_alias="CCBB_MERCHANT_ID")
    merchant_api_key: SecretStr | None = Field(
        default=None, validation_alias="CCBB_MERCHANT_API_KEY"
    )
    # Credits each new account gets when it signs up (a trial; `ccbb run --demo` sets 20).
    signup_credits: int = Field(default=0, ge=0, le=1000, validation_alias="CCBB_SIGNUP_CREDITS")

    # ---- ClickBank (billing.clickbank_*): the vendor account that sells the plans ----
    clickbank_vendor: str = Field(default="", validation_alias="CCBB_CLICKBANK_VENDOR")
    # the INS and thank-you page secret key (ClickBank: at most 16 capitals and digits)
    clickbank_secret_key: SecretStr | None = Field(
        default=None, validation_alias="CCBB_CLICKBANK_SECRET_KEY"
    )
    # ClickBank API key (refund, cancel and change tickets)
    clickbank_api_key: SecretStr | None = Field(
        default=None, validation_alias="CCBB_CLICKBANK_API_KEY"
    )
    # where pay links point: ClickBank's order form ({vendor} is filled in), or the sandbox's
    clickbank_pay_base: str = Field(
        default="https://{vendor}.pay.clickbank.net/", validation_alias="CCBB_CLICKBANK_PAY_BASE"
    )
    clickbank_api_base: str = Field(
        default="https://api.clickbank.com", validation_alias="CCBB_CLICKBANK_API_BASE"
    )
    # the dashboard's address as users reach it: links in mails, alerts and invitations
    public_url: str = Field(default="http://127.0.0.1:8000", validation_alias="CCBB_PUBLIC_URL")

    # ---- affiliate program (affiliates/) ----
    # the commission on each payment of a referred customer (0.30 = 30 %)
    affiliate_rate: Decimal = Field(
        default=Decimal("0.30"), ge=0, le=1, validation_alias="CCBB_AFFILIATE_RATE"
    )
    # days a commission stays pending (the refund window) before it can be paid
    affiliate_hold_days: int = Field(default=7, ge=0, validation_alias="CCBB_AFFILIATE_HOLD_DAYS")
    # seconds a web process gathers referral-link visits in memory before writing them (one
    # transaction per interval instead of one per click: web.visit_counter)
    affiliate_visit_flush_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias="CCBB_AFFILIATE_VISIT_FLUSH_SECONDS"
    )
    # whose public holidays move a payout day (ISO 3166 code, as the holidays library knows it)
    payout_country: str = Field(default="US", validation_alias="CCBB_PAYOUT_COUNTRY")
    # the smallest payable balance paid out (USD); below it, the balance carries over
    payout_minimum: Decimal = Field(
        default=Decimal("50"), ge=0, validation_alias="CCBB_PAYOUT_MINIMUM"
    )

    # PayPal Payouts (affiliates.paypal_payouts): the REST app's credentials and API base
    # (https://api-m.sandbox.paypal.com for PayPal's sandbox; `ccbb run --demo` sets ours)
    paypal_api_base: str = Field(
        default="https://api-m.paypal.com", validation_alias="CCBB_PAYPAL_API_BASE"
    )
    paypal_client_id: str = Field(default="", validation_alias="CCBB_PAYPAL_CLIENT_ID")
    paypal_client_secret: SecretStr | None = Field(
        default=None, validation_alias="CCBB_PAYPAL_CLIENT_SECRET"
    )
    # the sender_batch_id of a run is "<prefix>-<payout date>": one batch per date, ever
    # (two deployments paying from one PayPal account need two prefixes)
    payout_batch_prefix: str = Field(
        default="ccbb",
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        validation_alias="CCBB_PAYOUT_BATCH_PREFIX",
    )
    # seconds a PayPal call may take before the run stops (and is retried, safely)
    paypal_timeout: float = Field(default=30.0, gt=0, validation_alias="CCBB_PAYPAL_TIMEOUT")

    @field_validator("payout_country")
    @classmethod
    def _payout_country(cls, value: str) -> str:
        import holidays

        code = value.strip().upper()
        if code not in holidays.list_supported_countries():
            raise ValueError(
                f"CCBB_PAYOUT_COUNTRY={value!r} is not a country the holidays library knows: "
                "use an ISO 3166 code such as US, FR or GB"
            )
        return code

    @field_validator("clickbank_secret_key")
    @classmethod
    def _clickbank_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        problem = secret_key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @property
    def clickbank_secret(self) -> str:
        """The secret key ('' when ClickBank is not set up)."""
        key = self.clickbank_secret_key
        return key.get_secret_value() if key is not None else ""

    # ---- e-mail, monitoring and alerts (issue 14) -------------------------------------------
    # The SMTP server the product's mail goes through; without CCBB_SMTP_HOST no mail is sent
    # and new accounts need no confirmation (``ccbb run --demo`` starts a local catcher).
    smtp_host: str | None = Field(default=None, validation_alias="CCBB_SMTP_HOST")
    smtp_port: int = Field(default=587, validation_alias="CCBB_SMTP_PORT")
    # off (plain, e.g. a local relay) / starttls (upgrade on 587) / tls (implicit TLS on 465)
    smtp_tls: Literal["off", "starttls", "tls"] = Field(
        default="starttls", validation_alias="CCBB_SMTP_TLS"
    )
    smtp_user: str | None = Field(default=None, validation_alias="CCBB_SMTP_USER")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="CCBB_SMTP_PASSWORD")
    smtp_from: str = Field(
        default="ClickClickBankBank <no-reply@localhost>", validation_alias="CCBB_SMTP_FROM"
    )
    # Where ``ccbb run --demo``'s mail catcher keeps what it caught (set by the demo only).
    demo_mail_dir: Path | None = Field(default=None, validation_alias="CCBB_DEMO_MAIL_DIR")

    # ---- the public site and languages (web.site, web.i18n): the contact addresses pages give
    support_email: str = Field(
        default="support@clickclickbankbank.com", validation_alias="CCBB_SUPPORT_EMAIL"
    )
    affiliates_email: str = Field(
        default="affiliates@clickclickbankbank.com", validation_alias="CCBB_AFFILIATES_EMAIL"
    )

    @property
    def connect_to(self) -> list[str]:
        return [item.strip() for item in self.connect_to_list.split(",") if item.strip()]

    @field_validator("api_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"CCBB_API_RATE={value!r} is not a rate: write it as 120/minute (or "
                "10/second;1000/hour)"
            ) from None
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: ``postgresql+asyncpg://…`` or ``sqlite+aiosqlite:///…``."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'ccbb.sqlite3').resolve()}"
        if url.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
