"""The runtime the use cases share, below them: a workspace's model context (the backbone
checked against the ledger, task artifacts loaded onto it), a task's current run found without a
model, the canonical evaluation of a task, training one task, verification (full and probe) and
what a replay is compared with, the run lifecycle (host, heartbeat, failures recorded under the
signal guard), settings and time estimates. Nothing here imports a use case (``contlearn.ops``),
the API, the CLI or the server."""
