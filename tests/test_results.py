"""A run's result crosses modules typed (runtime.results) and is serialised only at the edges."""

from __future__ import annotations

import dataclasses
import json

import pytest

from contlearn.ops.train_next import train_pending
from contlearn.runtime.results import RunResult, Verification


def test_a_run_result_is_typed_and_recorded_as_its_dict_in_field_order(two_tasks) -> None:
    ws = two_tasks
    first, second = train_pending(ws.ledger, ws.store, ws.config, all_tasks=True, epochs=1)
    assert isinstance(second, RunResult) and second.task == "b" and second.supersedes is None
    (check,) = second.verifications
    assert isinstance(check, Verification)
    assert (check.task, check.identical, check.mode, check.outcome) == (
        "a",
        True,
        "full",
        "identical",
    )
    assert check.recorded == check.now == first.metrics
    with pytest.raises(dataclasses.FrozenInstanceError):
        second.run_id = 7  # type: ignore[misc]
    recorded = {run.id: run.result for run in ws.ledger.runs()}
    for result in (first, second):
        as_dict = result.as_dict()
        assert list(as_dict) == [f.name for f in dataclasses.fields(RunResult)]
        assert json.dumps(recorded[result.run_id]) == json.dumps(as_dict)
    assert second.as_dict()["verifications"] == [check.as_dict()]
