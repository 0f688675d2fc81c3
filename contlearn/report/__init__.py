"""The forgetting-comparison report: shared content (``content``), text renderings (``text``:
Markdown, HTML, CSV), figures (``figures``) and the folder that holds them (``write``)."""
