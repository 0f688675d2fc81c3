"""The model side, with no ledger and no files: the frozen backbone (``backbone``), where each
family keeps its layers and sites (``families``), the parameter-efficient methods
(``methods/``), the per-task routing (``routing``), heads (``heads``) and the backbone with its
tasks (``adapted``)."""
