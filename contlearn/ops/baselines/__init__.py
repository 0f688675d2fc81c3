"""The ways of learning the sequence that ``compare`` sets beside each other, each described by
a ``Baseline`` (``base``) registered by name (``registry``): the adapters, and the baselines
``sequential`` (full fine-tuning, task after task), ``ewc`` and ``replay`` (the same sequence
with a penalty, or with earlier examples mixed in: a ``Strategy`` on the sequential runner),
``joint`` (every task at once), ``separate`` (a model per task) and ``lora_merged``
(a LoRA per task, each merged into the weights before the next). Each baseline's module
trains it (``run(job)``), records its runs and evaluations in the ledger and resumes per task;
``results`` reads its matrix back."""
