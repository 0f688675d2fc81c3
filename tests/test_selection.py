"""Model selection that does not peek at the reported split: the ``holdout`` rule (the default
for new runs) picks the best epoch on a seeded slice of the training split that is not trained
on; ``dev`` (release 0.1's rule, which its runs replay) picks on the dev split. The run records
the rule; a comparison's baselines use their adapter runs' rule and its report says which."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contlearn.config import TrainConfig, recorded_train_config
from contlearn.runtime.context import training_rows
from tests.conftest import invoke


def _rows(count: int) -> SimpleNamespace:
    return SimpleNamespace(
        texts=tuple((f"t{i}",) for i in range(count)), labels=tuple(range(count))
    )


def _replace(rows, **values):
    return SimpleNamespace(**{**rows.__dict__, **values})


@pytest.fixture(autouse=True)
def _plain_replace(monkeypatch):
    import contlearn.runtime.context as context

    monkeypatch.setattr(context, "replace", _replace)


@pytest.mark.parametrize(("count", "held"), [(48, 5), (5000, 500), (67349, 1000), (2, 1)])
def test_the_holdout_is_a_tenth_at_most_a_thousand_and_disjoint(count: int, held: int) -> None:
    train, holdout = training_rows(_rows(count), TrainConfig())
    assert len(holdout.labels) == held and len(train.labels) == count - held
    assert not set(train.labels) & set(holdout.labels)
    again, same = training_rows(_rows(count), TrainConfig())
    assert again.labels == train.labels and same.labels == holdout.labels  # seeded
    other = training_rows(_rows(count), TrainConfig(seed=7))[1]
    assert count < 10 or other.labels != holdout.labels


def test_the_budget_applies_to_what_is_left_and_dev_rule_takes_no_holdout() -> None:
    train, holdout = training_rows(_rows(5000), TrainConfig(max_train_examples=1000))
    assert len(train.labels) == 1000 and len(holdout.labels) == 500
    assert not set(train.labels) & set(holdout.labels)
    train, holdout = training_rows(_rows(5000), TrainConfig(selection="dev"))
    assert holdout is None and len(train.labels) == 5000


def test_runs_before_the_rule_read_as_dev_selection() -> None:
    assert recorded_train_config({"epochs": 2}).selection == "dev"
    assert TrainConfig().selection == "holdout"


def test_a_run_records_its_rule_and_picks_on_it(two_tasks) -> None:
    ws = two_tasks
    done = invoke(ws, "train-next", "--epochs", "2", "--json", "-q")
    assert done.exit_code == 0, done.output
    run = ws.ledger.trained_run(ws.ledger.task("a").id)
    assert run.config["train"]["selection"] == "holdout"
    assert [set(h) for h in run.result["history"]] == [{"epoch", "loss", "holdout", "seconds"}] * 2
    assert run.examples == (96 - 10) * 2  # the holdout is not trained on
    done = invoke(ws, "train-next", "--selection", "dev", "--epochs", "2", "--json", "-q")
    run = ws.ledger.trained_run(ws.ledger.task("b").id)
    assert run.config["train"]["selection"] == "dev" and run.examples == 96 * 2
    assert "dev" in run.result["history"][0]
    results = ws.compare(methods=("adapter", "sequential"), epochs=1)
    assert results["config"]["selection"] == "a holdout / b dev"
    assert invoke(ws, "train-next", "--selection", "test").exit_code != 0
