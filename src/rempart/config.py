"""One Settings object, read from the environment (prefix ``REMPART_``) by the entry points.

Nothing here runs at import time: ``Settings()`` is built by ``rempart.cli`` or by the tests and
passed down. In ``prod``, a missing or default secret stops start-up with the variable's name.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names the environment variable."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMPART_", extra="ignore")

    env: Literal["dev", "prod", "test"] = "dev"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    database_replica_url: str | None = None
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    base_url: str | None = None
    port: int = 8000
    metrics_token: SecretStr | None = None

    # Tokens and caches.
    token_ttl_seconds: int = 900
    principal_cache_seconds: float = 2.0  # DESIGN §4.8: revocation holds within seconds
    channel_cache_seconds: float = 1.0

    # Rate limits in front of authentication (GCRA, per client IP): token requests, and
    # requests with a bad bearer token.
    token_requests_per_ip_per_s: float = 2.0
    token_requests_per_ip_burst: int = 60
    bad_tokens_per_ip_per_s: float = 2.0
    bad_tokens_per_ip_burst: int = 60
    # Portal sign-in: ceremonies begun and failed answers, per client IP.
    signin_attempts_per_ip_per_s: float = 1.0
    signin_attempts_per_ip_burst: int = 30

    # Transitional passwords (DESIGN §4.1): off unless the operator turns them on for the
    # installation *and* for the account; always with TOTP. Failures per account and per IP:
    # ``password_failures_max`` at once, then one more every 3600/per_hour seconds.
    transitional_passwords: bool = False
    password_failures_max: int = 10
    password_failures_per_hour: float = 6.0

    # Rights checks.
    care_relationship_days: int = 90
    engagement_validity_days: int = 15
    pec_validity_days: int = 180  # a prise en charge guarantees its amount this long
    pec_grace_days: int = 15  # délai de tolérance: an invoice may cite it this much later

    # Payment runs: the operator's account the transfers leave from (the debtor of pain.001).
    debtor_name: str = "Rempart Operateur Demo"
    debtor_iban: str = "FR7630006000011234567890189"
    debtor_bic: str = "AGRIFRPP"

    # Distinct-beneficiary ceilings: {"pharmacy": [300, 600], …} overrides the defaults of
    # domain.quotas; answers past the soft ceiling wait this long (API clients).
    quota_ceilings: dict[str, tuple[int, int]] = Field(default_factory=dict)
    quota_slowdown_seconds: float = 1.0

    # Beneficiary imports: a file that would close more than this share of an OCAM's open
    # rights is refused unless the operator passes --accept-closures.
    import_closure_ratio_max: float = 0.2

    # Mail to accounts (notifications): delivered by the worker when an SMTP server is set,
    # ``smtp://host:port`` (plain, loopback relay) or ``smtps://user:password@host:port``.
    smtp_url: SecretStr | None = None
    mail_from: str = "Rempart <ne-pas-repondre@localhost>"

    # Request limits.
    body_bytes_max: int = 1_000_000

    serve_worker: bool = False  # set by `rempart serve` unless --no-worker
    # An idle worker looks for work this often; a round that found work starts the next at once.
    worker_interval_seconds: float = Field(default=5.0, gt=0)

    log_json: bool = False
    log_level: str = "info"

    db_pool_size: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _paths_absolute(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    # -- derived values --------------------------------------------------------------------

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the primary database (async driver added by ``db.engine``)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'rempart.db'}"

    @property
    def public_base_url(self) -> str:
        return (self.base_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying-party id: the host of the base URL (never an IP address)."""
        return urlsplit(self.public_base_url).hostname or "localhost"

    @property
    def is_sqlite(self) -> bool:
        return self.database.startswith("sqlite")

    def check_for_startup(self) -> None:
        """Refuse to start production on defaults. Names the variable to set."""
        if _is_ip(self.rp_id):
            raise ConfigError(
                "REMPART_BASE_URL: passkeys need a host name (an IP address cannot be a WebAuthn "
                "RP ID); use http://localhost:<port> locally"
            )
        if self.env != "prod":
            return
        if not (self.master_key or self.master_key_file):
            raise ConfigError("REMPART_MASTER_KEY or REMPART_MASTER_KEY_FILE must be set in prod")
        if not self.database_url:
            raise ConfigError("REMPART_DATABASE_URL must be set in prod")
        if not self.base_url or not self.base_url.startswith("https://"):
            raise ConfigError("REMPART_BASE_URL must be an https:// URL in prod")
        if self.metrics_token is None:
            raise ConfigError("REMPART_METRICS_TOKEN must be set in prod")
