"""The one configuration object, read from ``COEFLOW_*`` environment variables.

Build it once at the edge (the command line, a test) and pass it in; nothing else reads the
environment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from coeflow.clock import Clock, scaled_clock, utc_now

EMBEDDED_BOOTSTRAP = "127.0.0.1:9092"

Role = Literal["processor", "api", "executors", "crm-simulator"]
Compression = Literal["none", "snappy", "gzip", "lz4", "zstd"]


def producer_codec(compression: Compression) -> str | None:
    """``compression`` as the Kafka clients' producers take it (``None``: uncompressed)."""
    return None if compression == "none" else compression


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COEFLOW_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers. Unset: `coeflow dev` starts the embedded broker "
        f"and everything connects to {EMBEDDED_BOOTSTRAP}.",
    )
    app_id: str = Field(
        default="coeflow",
        description="The consumer group the workers share (Faust's app id; also the prefix "
        "of Faust's own topics).",
    )
    partitions: Annotated[int, Field(ge=1)] = Field(
        default=8, description="Partitions of the topics that `coeflow` creates."
    )
    replication_factor: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Replication factor of the topics that `coeflow` creates."
    )
    group_session_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Consumer-group session timeout in seconds. Apache Kafka refuses values "
        "below its group.min.session.timeout.ms (6 s by default); the embedded broker holds "
        "every JoinGroup for half of it, so `coeflow dev` lowers it to 2 s.",
    )
    fetch_wait: Annotated[float, Field(gt=0, le=10)] = Field(
        default=0.05,
        description="Seconds a worker's fetch may wait at the broker for records that are not "
        "there yet. The embedded broker does not answer a waiting fetch as records arrive: a "
        "fetch allowed 0.5 s (the Kafka clients' default) answered 200 ms late, one allowed "
        "0.05 s within a few ms. Lower answers sooner; an idle worker then asks more often.",
    )
    compression: Compression = Field(
        default="snappy",
        description="The codec of the record batches a worker writes: run records, commands, "
        "outcomes, record state and timers (every Kafka client reads them all). JSON shrinks "
        "several times, which spares the broker's disk, network and CPU; snappy costs the "
        "worker least of the codecs that compress (docs/performance.md has the measurement), "
        "`none` writes the batches as they are.",
    )
    processes: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1,
        description="Worker processes `coeflow worker` starts on this machine, in one consumer "
        "group, so that one command uses every core (`--processes` says the same). Process *n* "
        "(from 0) serves the admin API on `COEFLOW_WEB_PORT` + *n* and keeps its files under "
        "`COEFLOW_DATA_DIR`/process-*n*; one that exits stops the others.",
    )
    web_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=6066, description="Port of the admin API."
    )
    web_bind: str = Field(default="127.0.0.1", description="Address the admin API binds to.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="The operator's bearer token for the admin API: every tenant, every scope "
        "(tenants get their own tokens through `POST /api/v1/tokens`). `coeflow dev` makes one "
        "and prints it when unset.",
    )
    api_url: str | None = Field(
        default=None,
        description="Where `coeflow workflows` finds the admin API. Unset: "
        "`http://127.0.0.1:<COEFLOW_WEB_PORT>`.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="The bearer token `coeflow workflows` sends (a tenant's token). Unset: "
        "`COEFLOW_ADMIN_TOKEN`.",
    )
    run_history_per_workflow: Annotated[int, Field(ge=1)] = Field(
        default=500, description="Runs the run history keeps per workflow (the newest)."
    )
    run_history_days: Annotated[float, Field(gt=0)] = Field(
        default=30, description="Runs older than this many days leave the run history."
    )
    run_history_max_runs: Annotated[int, Field(ge=1)] = Field(
        default=50_000,
        description="Runs the run history keeps in all, whatever the workflow (the oldest go "
        "first): a bound on every worker serving the API, with `COEFLOW_RUN_HISTORY_MAX_BYTES`.",
    )
    run_history_per_tenant: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="Runs the run history keeps per tenant (its oldest go first): one "
        "tenant's flood of runs evicts its own, never another tenant's.",
    )
    run_history_max_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=512 << 20,
        description="Bytes of run records the run history keeps in all (runs embed their "
        "events); a tenant keeps at most a quarter of it.",
    )
    max_causation_depth: Annotated[int, Field(ge=0)] = Field(
        default=8,
        description="A change caused by a chain of workflow actions deeper than this runs "
        "nothing and is recorded as loop_blocked.",
    )
    max_event_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=1_048_576,
        description="Largest ChangeEvent accepted; larger values are dead-lettered.",
    )
    dead_letter_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=262_144,
        description="At most this many bytes of a bad value are copied into its dead letter "
        "(the letter says when it was cut).",
    )
    create_topics: bool = Field(
        default=True,
        description="Create the contract's topics at start when they are missing (turn off "
        "where an operator manages topics).",
    )
    log_runs: bool = Field(
        default=False,
        description="Log a line per run, at most 20 a second in each process and then a line "
        "counting the rest (on in `coeflow dev`).",
    )
    store: Literal["memory://", "rocksdb://"] = Field(
        default="memory://",
        description="Where the worker keeps its tables (record state, run progress): "
        "`memory://`, rebuilt from the changelog topics at each start, or `rocksdb://` "
        "(install the `rocksdb` extra) on disk under `COEFLOW_DATA_DIR`, for production.",
    )
    data_dir: Path = Field(
        default=Path(".coeflow-data"), description="Where the worker keeps its local files."
    )

    roles: Annotated[frozenset[Role], NoDecode] = Field(
        default=frozenset({"processor", "api", "executors"}),
        description="What this worker runs, comma-separated: `processor` (everything that "
        "decides runs: record changes, inbound deliveries, schedule ticks, fired timers), "
        "`api` (the admin API and web app, their projections and run history, the run "
        "tracker, the inbound webhook URL), `executors` (email, SMS, Slack, webhooks) and "
        "`crm-simulator` (applies record-mutation commands like a CRM; `coeflow dev --demo` "
        "adds it). Run executors as their own service with `executors` alone and their own "
        "`COEFLOW_APP_ID`: the workers of one consumer group must run the same roles "
        "(`api` alone joins no Faust group and may share the processors' app id).",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for Send Email. Unset: email actions fail."
    )
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = Field(default=587, description="SMTP port.")
    smtp_from: str = Field(
        default="workflows@coeffection.example", description="Sender address of emails."
    )
    smtp_user: str | None = Field(default=None, description="SMTP user name (with password).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="`starttls` (upgrade after connecting; required), `tls` (TLS from the "
        "first byte, usually port 465) or `none` (plain text, for a local relay).",
    )
    sms_api_url: str | None = Field(
        default=None,
        description="The SMS provider's send endpoint (Twilio-style: a form POST of To, From, "
        "Body with basic auth). Unset: SMS actions fail.",
    )
    sms_account: str | None = Field(default=None, description="SMS provider account (user).")
    sms_auth_token: SecretStr | None = Field(default=None, description="SMS provider token.")
    sms_from: str | None = Field(default=None, description="Sender number of SMS.")
    outbound_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated hosts, addresses or CIDRs that Call Webhook and Slack may "
        "reach although the SSRF rules would block them (empty: none).",
    )
    webhook_signing_secret: SecretStr | None = Field(
        default=None,
        description="Signs outbound webhook deliveries (HMAC-SHA256). Unset: Call Webhook "
        "actions fail; `coeflow dev` makes one and prints it.",
    )
    action_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="Seconds one attempt at an action may take."
    )
    action_max_attempts: Annotated[int, Field(ge=1)] = Field(
        default=5, description="Attempts per action before it fails and is dead-lettered."
    )
    action_backoff: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="Seconds before the second attempt; doubles each time, with jitter.",
    )
    action_backoff_max: Annotated[float, Field(gt=0)] = Field(
        default=300.0, description="Longest wait between attempts (also caps Retry-After)."
    )
    action_concurrency: Annotated[int, Field(ge=1)] = Field(
        default=200, description="Actions one executor worker performs at once."
    )
    action_ledger_days: Annotated[float, Field(gt=0)] = Field(
        default=7.0,
        description="How long outcomes are kept (retention of `workflow.action-outcomes`): "
        "a repeated command is recognised within this window.",
    )

    inbound_webhook_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=262_144,
        description="Largest body a Webhook Received URL accepts; larger ones get 413.",
    )
    inbound_webhook_tolerance: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="Seconds a delivery's signature timestamp may be from this server's clock.",
    )

    backtest_max_events: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=1_000_000,
        description="Record changes of the tenant inside the window one backtest scans at "
        "most unless its request asks for another `max_events` (up to 10,000,000).",
    )
    backtest_max_changed: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1_000,
        description="Changed events a backtest keeps with both outcomes (it counts them all): "
        "a bound on each result's memory.",
    )
    backtest_max_records: Annotated[int, Field(ge=1)] = Field(
        default=100_000,
        description="Records a backtest keeps a state of (for the overdue and stall timers); "
        "past it, further records' timers are not followed and the result says how many.",
    )
    backtest_slots: Annotated[int, Field(ge=1, le=16)] = Field(
        default=1,
        description="Backtests one api worker runs at once, each in a child process at a "
        "lower CPU priority; the others wait, queued.",
    )
    backtest_per_tenant: Annotated[int, Field(ge=1, le=100)] = Field(
        default=3,
        description="Backtests one tenant may have queued or running on one worker; one more "
        "is refused with 429.",
    )
    backtest_keep: Annotated[float, Field(gt=0)] = Field(
        default=3600.0,
        description="Seconds a finished backtest (its result) stays readable in the memory of "
        "the worker that ran it.",
    )

    dev_broker_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=9092,
        description="Port of the embedded broker that `coeflow dev` starts on 127.0.0.1 when "
        "`COEFLOW_KAFKA_BOOTSTRAP` is unset (and where everything then connects).",
    )
    dev_smtp_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=2525,
        description="Port of the local SMTP outbox that `coeflow dev` runs on 127.0.0.1 when "
        "`COEFLOW_SMTP_HOST` is unset (email goes there).",
    )
    dev_sink_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=6067,
        description="Port of the local HTTP sink that `coeflow dev` runs on 127.0.0.1 for SMS "
        "when `COEFLOW_SMS_API_URL` is unset, and for the Slack posts of `--demo` (its example "
        "workflow posts to port 6067).",
    )

    clock_start: AwareDatetime | None = Field(
        default=None,
        description="For tests and demos only: the time the worker's clock shows at "
        "`COEFLOW_CLOCK_ANCHOR` (Unix time), running `COEFLOW_CLOCK_SPEED` times as fast. "
        "Unset: the real clock.",
    )
    clock_anchor: float | None = Field(
        default=None, description="Unix time at which the clock shows `COEFLOW_CLOCK_START`."
    )
    clock_speed: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="How fast a clock with `COEFLOW_CLOCK_START` runs."
    )

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_from_text(cls, value: object) -> object:
        return frozenset(_comma_list(value)) if isinstance(value, str) else value

    @field_validator("outbound_allowlist", mode="before")
    @classmethod
    def _allowlist_from_text(cls, value: object) -> object:
        return tuple(_comma_list(value)) if isinstance(value, str) else value

    def clock(self) -> Clock:
        """The worker's one clock: the real one, unless a test set ``clock_start``."""
        if self.clock_start is None:
            return utc_now
        anchor = self.clock_anchor if self.clock_anchor is not None else time.time()
        return scaled_clock(self.clock_start, self.clock_speed, anchor)

    @property
    def admin_api_url(self) -> str:
        return self.api_url or f"http://127.0.0.1:{self.web_port}"

    @property
    def compression_type(self) -> str | None:
        """``compression`` as the Kafka clients' producers take it."""
        return producer_codec(self.compression)

    @property
    def bootstrap(self) -> str:
        """The servers to connect to: the configured ones, or the embedded broker's."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.dev_broker_port}"


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
