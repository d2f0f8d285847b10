"""The step task skips a redelivered step: the run already ended, or the step already
succeeded. Without the check, acks_late redelivery runs a step twice, or after a cancel."""

from dagster import DagsterEventType, DagsterInstance


def step_starts(instance: DagsterInstance, run_id: str) -> int:
    return len(instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records)


def test_a_step_that_already_succeeded_returns_its_recorded_events(deliver):
    instance, run, send = deliver
    first = send()
    assert step_starts(instance, run.run_id) == 1

    again = send()

    assert step_starts(instance, run.run_id) == 1, "the step ran a second time"
    assert again, "an orchestrator waiting on the redelivered task must see the step finish"
    assert any("STEP_SUCCESS" in event for event in again)
    assert len(again) <= len(first) + 1


def test_a_step_of_a_run_that_ended_is_not_executed(deliver):
    instance, run, send = deliver
    instance.report_run_canceled(run)

    assert send() == []
    assert step_starts(instance, run.run_id) == 0
