"""The task ledger: schema (``schema``), engine and migrations (``engine``; the revisions live in
the repository's top-level ``migrations/``), the records it hands out (``records``) and the
store that reads and writes them (``store``)."""
