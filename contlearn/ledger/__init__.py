"""The task ledger: schema (``schema``), engine and migrations (``engine``, ``migrations/``),
the records it hands out (``records``) and the store that reads and writes them (``store``)."""
