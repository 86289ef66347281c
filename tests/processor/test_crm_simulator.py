from __future__ import annotations

from processor.crm_simulator import SimulatedCrm
from tests.factories import NOW, make_command, make_event


def crm_with_lead() -> SimulatedCrm:
    crm = SimulatedCrm()
    crm.observe(make_event(record_id="L-1"))  # the lead the factory's commands act on
    return crm


def test_update_field_changes_the_record_and_echoes_the_causation() -> None:
    crm = crm_with_lead()
    command = make_command("update_field", {"field": "profile.tier", "value": "gold"})
    change = crm.apply(command, NOW)
    assert change is not None
    assert (change.operation, change.record_type, change.record_id) == ("updated", "lead", "L-1")
    assert change.before is not None and "profile" not in change.before
    assert change.after == {**change.before, "profile": {"tier": "gold"}}
    assert change.causation == command.causation
    assert change.occurred_at == NOW


def test_a_repeated_command_changes_nothing_and_ids_are_stable() -> None:
    command = make_command("assign_owner", {"owner_id": "u-senior"})
    first = crm_with_lead().apply(command, NOW)
    again = crm_with_lead()
    assert first is not None and (change := again.apply(command, NOW)) is not None
    assert change.event_id == first.event_id
    assert again.apply(command, NOW) is None


def test_create_task_makes_a_related_record() -> None:
    command = make_command("create_task", {"title": "Follow-up call", "assignee": "u-7"})
    change = crm_with_lead().apply(command, NOW)
    assert change is not None and change.operation == "created" and change.record_type == "task"
    assert change.after is not None
    assert change.after["related_to"] == {"type": "lead", "id": "L-1"}
    assert change.after["status"] == "open" and change.after["title"] == "Follow-up call"


def test_deleted_records_are_forgotten() -> None:
    crm = crm_with_lead()
    crm.observe(make_event(record_id="L-1", operation="deleted", before={"name": "Ada"}))
    change = crm.apply(make_command("change_status", {"status": "won"}), NOW)
    assert change is not None and change.operation == "created"


def test_a_command_on_a_record_not_seen_yet_updates_it() -> None:
    """The copy reads crm.record-changes apart from the processor, so a command can arrive
    before the change that caused it: the record exists, and the change is an update."""
    change = SimulatedCrm().apply(make_command("change_status", {"status": "won"}), NOW)
    assert change is not None and change.operation == "updated" and change.before == {}
