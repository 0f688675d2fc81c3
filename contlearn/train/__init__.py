"""Training, with no database: the loop (``loop``), the optimizer and its weight-decay rule
(``optim``), batching (``batching``) and seeding (``seeding``)."""
