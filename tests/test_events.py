"""What a command tells its user goes through one events object (runtime.events)."""

from __future__ import annotations

from contlearn.runtime.events import QUIET, Events


def test_an_events_object_without_hooks_hears_nothing_and_times_nothing() -> None:
    assert QUIET.bars is False and QUIET.estimates(task="a") is None
    QUIET.point({"label": "lora"})
    heard: list = []
    events = Events(bars=True, on_estimate=heard.append)
    quiet = events.without_bars()
    assert quiet.bars is False and quiet.on_estimate is events.on_estimate
    events.estimates(task="a", selection="dev")({"steps": 4, "task": "kept last"})
    assert heard == [{"task": "kept last", "selection": "dev", "steps": 4}]


def test_train_next_tells_each_estimate_and_result_through_the_api_hooks(two_tasks) -> None:
    estimates: list = []
    results: list = []
    runs = two_tasks.train_next(
        all_tasks=True,
        epochs=2,
        max_train_examples=24,
        batch_size=2,
        on_estimate=estimates.append,
        on_result=results.append,
    )
    assert results == runs and [r["task"] for r in runs] == ["a", "b"]
    assert [(e["task"], list(e)[:2]) for e in estimates] == [
        ("a", ["task", "selection"]),
        ("b", ["task", "selection"]),
    ]
    assert all(e["epochs"] == 2 and e["steps"] >= 4 and e["seconds"] > 0 for e in estimates)
