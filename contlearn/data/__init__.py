"""Task data: a folder on disk -> validated train and dev splits (entry points in ``task``),
and ``prepare``, which turns the demo corpora shipped in packages into such folders."""
