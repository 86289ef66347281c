"""The one configuration object, read from ``COEFLOW_*`` environment variables.

Build it once at the edge (the command line, a test) and pass it in; nothing else reads the
environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BOOTSTRAP = "127.0.0.1:9092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COEFLOW_", extra="ignore", frozen=True)

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
    web_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=6066, description="Port of the admin API."
    )
    web_bind: str = Field(default="127.0.0.1", description="Address the admin API binds to.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin API. `coeflow dev` makes one and prints it when "
        "unset; a worker without one refuses every API call.",
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
    log_runs: bool = Field(default=False, description="Log one line per run (on in `coeflow dev`).")
    data_dir: Path = Field(
        default=Path(".coeflow-data"), description="Where the worker keeps its local files."
    )

    @property
    def bootstrap(self) -> str:
        """The servers to connect to: the configured ones, or the embedded broker's."""
        return self.kafka_bootstrap or EMBEDDED_BOOTSTRAP
