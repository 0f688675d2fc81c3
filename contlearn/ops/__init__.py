"""The use cases. Each receives what it uses (the ledger, the artifact store, the workspace's
configuration, a model context), never the ``Workspace``: ``intake`` (init, add-task, status),
``train_next``, ``verify``, ``audit``, ``compare`` with its baseline ``full_finetune`` and
``reporting``, and ``predict``; ``context``, ``evaluate`` and ``runs`` are what they share."""
