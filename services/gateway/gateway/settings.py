"""The gateway's own settings, on top of the common ones."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from gistsync.settings import GatewaySettings

MIN_SECRET_LENGTH = 16


class Settings(GatewaySettings):
    # /metrics, /healthz and /readyz on GATEWAY_HOST, apart from the public port (which
    # answers the probes too, never the metrics), like the other services' ops ports.
    gateway_ops_port: int = Field(9100, ge=1, le=65535)
    # Set: every state change needs it (the X-API-Key header, or a session for the pages).
    # Unset: anyone who reaches the gateway can do anything, so it must not face the internet.
    gateway_api_key: SecretStr | None = None
    # With a key set, reads need it too unless this is false.
    gateway_protect_reads: bool = True
    # Signs the session, CSRF and flash cookies. Unset: derived from the API key, or random
    # per process when there is no key (then several gateways behind one address need it set).
    gateway_session_secret: SecretStr | None = None
    gateway_session_max_age_seconds: int = Field(12 * 3600, ge=60)
    # Set behind HTTPS, so the cookies never travel in clear.
    gateway_cookie_secure: bool = False
    gateway_max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A client that sends its body slower than this is cut off (408).
    gateway_body_timeout_seconds: float = Field(10.0, gt=0)
    # State-changing requests per client: a bucket of `burst`, refilled at `per_minute`.
    gateway_rate_limit_per_minute: float = Field(60.0, gt=0)
    gateway_rate_limit_burst: int = Field(20, ge=1)
    # Behind one reverse proxy: the client is the last X-Forwarded-For address, not the proxy.
    gateway_trust_forwarded_for: bool = False
    # After a form changes state, the page waits up to this long to show the change.
    gateway_ui_settle_seconds: float = Field(2.0, ge=0, le=30)
    # Names the Host header may carry besides the local ones (localhost, the loopback and
    # connection addresses, the machine's name, `gateway`): comma-separated, `.example.com`
    # for any name under it, `*` for any name at all. Anything else is answered 421.
    gateway_allowed_hosts: str = ""
    # A request's line and headers must arrive within this long of their first byte.
    gateway_header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    # A connection with no request in progress is closed after this long.
    gateway_idle_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # Wrong API keys per client, on every route: a bucket of `burst`, refilled at `per_minute`.
    gateway_auth_failures_per_minute: float = Field(6.0, gt=0)
    gateway_auth_failure_burst: int = Field(10, ge=1)

    @field_validator("gateway_api_key", "gateway_session_secret", mode="after")
    @classmethod
    def _strong_or_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty variable (as compose files write it) means unset
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("gateway_ops_port", mode="after")
    @classmethod
    def _apart_from_the_public_port(cls, value: int, info: ValidationInfo) -> int:
        if value == info.data.get("gateway_port"):
            raise ValueError("must differ from GATEWAY_PORT")
        return value

    @property
    def api_key(self) -> str | None:
        return self.gateway_api_key.get_secret_value() if self.gateway_api_key else None
