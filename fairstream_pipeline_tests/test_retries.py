"""Writing to the application database is retried with the budget the settings have when the step
fails; a contract error never is."""

import dagster as dg
import pytest

from fairstream_pipeline.defs.retries import database_write_retries

ATTEMPTS: list[int] = []


def failing_write(error: Exception):
    @dg.asset(name="write")
    def write(context: dg.AssetExecutionContext):
        ATTEMPTS.append(context.retry_number)
        with database_write_retries(context):
            raise error

    return write


@pytest.fixture(autouse=True)
def budget(monkeypatch):
    ATTEMPTS.clear()
    monkeypatch.setenv("FAIRSTREAM_DATABASE_WRITE_RETRIES", "2")
    monkeypatch.setenv("FAIRSTREAM_DATABASE_WRITE_DELAY_SECONDS", "0")


def retries_of(result: dg.ExecuteInProcessResult) -> int:
    return len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"])


def failure(result: dg.ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = event.step_failure_data.error
    return f"{error.message.strip()} | {error.cause.message.strip() if error.cause else ''}"


def test_a_database_error_is_retried_with_the_budget_read_when_it_fails():
    result = dg.materialize([failing_write(OSError("connection refused"))], raise_on_error=False)
    assert ATTEMPTS == [0, 1, 2]
    assert retries_of(result) == 2
    assert failure(result) == "Exceeded max_retries of 2 | OSError: connection refused"


def test_a_retryable_failure_is_retried():
    result = dg.materialize([failing_write(dg.Failure("the database is read-only"))], raise_on_error=False)
    assert ATTEMPTS == [0, 1, 2] and retries_of(result) == 2


def test_a_contract_error_is_never_retried():
    result = dg.materialize(
        [failing_write(dg.Failure("the closed statements differ", allow_retries=False))], raise_on_error=False
    )
    assert ATTEMPTS == [0] and retries_of(result) == 0
    assert "the closed statements differ" in failure(result)


def test_no_retry_when_the_budget_is_zero(monkeypatch):
    monkeypatch.setenv("FAIRSTREAM_DATABASE_WRITE_RETRIES", "0")
    result = dg.materialize([failing_write(OSError("connection refused"))], raise_on_error=False)
    assert ATTEMPTS == [0] and retries_of(result) == 0
