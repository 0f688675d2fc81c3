"""The use cases. Each receives what it uses (the ledger, the artifact store, the workspace's
configuration, a model context), never the ``Workspace``: ``intake`` (init, add-task, status),
``train_next`` (the queue: train-next and retrain) with ``train_task`` (one claimed task) and
``settings``, ``verify``, ``audit``, ``compare`` with its baseline ``full_finetune`` and
``reporting``, ``predict`` with ``predict_files``, ``lifecycle`` (remove, gc) and ``history``
(runs, comparisons). What they share: ``context`` (the model side), ``current`` (a task's
current run, no model needed), ``evaluate``, ``runs`` (host, pid, heartbeat, failures) and
``pace`` (time estimates)."""
