"""Create the product's topics on the broker when they are missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from actions.registry import REGISTRY as ACTION_TYPES
from coeflow.errors import BrokerError
from coeflow.settings import Settings
from topics.catalog import TopicSpec, product_topics

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, connect_within: float = 30.0) -> list[TopicSpec]:
    """Create every topic of the contract that does not exist yet; returns all of them."""
    specs = product_topics(
        ACTION_TYPES,
        settings.partitions,
        int(settings.action_ledger_days * 86_400_000),
        settings.app_id,
    )
    await create_missing(settings, specs, connect_within)
    return specs


async def create_missing(
    settings: Settings, specs: list[TopicSpec], connect_within: float = 30.0
) -> None:
    """Create those of ``specs`` that do not exist yet."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap, client_id=f"{settings.app_id}-admin"
    )
    try:
        await asyncio.wait_for(admin.start(), connect_within)
    except (KafkaConnectionError, TimeoutError) as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            s.partitions,
                            settings.replication_factor,
                            topic_configs=s.config,
                        )
                        for s in missing
                    ]
                )
            log.info("created topics: %s", ", ".join(s.name for s in missing))
    finally:
        await admin.close()


if __name__ == "__main__":  # `python -m processor.topic_creation`: the deployment's topic job
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    created = asyncio.run(ensure_topics(Settings()))
    log.info("%d topics present", len(created))
