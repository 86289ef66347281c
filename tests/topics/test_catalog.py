from __future__ import annotations

from actions.registry import REGISTRY
from topics.catalog import product_topics


def test_every_topic_is_created_with_the_retention_its_readers_need() -> None:
    specs = {
        s.name: s
        for s in product_topics(REGISTRY, 8, outcome_retention_ms=604_800_000, app_id="coeflow")
    }
    assert len(specs) == 14 + len(REGISTRY)
    assert specs["workflow.definition-versions"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.api-tokens"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.audit"].config == {"retention.ms": "-1"}
    assert specs["coeflow-record-state-changelog"].config == {"cleanup.policy": "compact"}
    assert specs["coeflow-run-progress-changelog"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.timers"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.definitions"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.schedule-ticks"].config == {"cleanup.policy": "compact"}
    assert specs["workflow.action-outcomes"].config == {"retention.ms": "604800000"}
    assert specs["workflow.inbound-webhooks"].config == {"retention.ms": "86400000"}
    assert specs["workflow.actions.send_email"].partitions == 8
