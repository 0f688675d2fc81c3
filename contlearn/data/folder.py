"""A data folder: which layout it has (saved dataset, GLUE, train/dev table files, or CoNLL
column files) and which files it reads.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadData
from . import rules
from .conll import is_conll, read_conll_folder
from .files import check_file, extension
from .glue import detect_glue_task
from .messages import listing, too_many_rows, unreadable
from .readers import read_table
from .rules import CONLL_DEV_STEMS, CONLL_FORMATS, DEV_STEMS, FILE_FORMATS, TRAIN_STEMS
from .saved import read_saved_dataset
from .tables import Folder


def data_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise BadData(f"data folder {folder} does not exist; pass the folder that holds the data")
    if not folder.is_dir():
        raise BadData(f"{folder} is a file, not a folder; pass the folder that holds the data")
    return folder.resolve()


def read_folder(source: Path) -> Folder:
    if (source / "dataset_dict.json").is_file():
        folder = read_saved_dataset(source)
    else:
        folder = _read_file_folder(source)
    for table in (folder.train, folder.dev):
        if table.rows == 0:
            raise BadData(f"{table.file} in {source} has no data rows; add rows to it")
        if table.rows > rules.MAX_ROWS:  # the readers of text files stop earlier, as they read
            raise too_many_rows(table.file)
    return folder


def _read_file_folder(source: Path) -> Folder:
    names = _folder_files(source)
    train = _one_file(source, names, TRAIN_STEMS, "training", (*FILE_FORMATS, *CONLL_FORMATS))
    if is_conll(train):
        dev = _one_file(source, names, CONLL_DEV_STEMS, "validation", CONLL_FORMATS)
        return read_conll_folder(source, train, dev)
    check_file(source, train)
    glue_task = detect_glue_task(source, train)
    matched = [n for n in names if n.lower() == "dev_matched.tsv"]
    if glue_task == "mnli" and matched:
        dev = matched[0]  # MNLI's dev split; dev_mismatched is a second test of the same task
    else:
        dev = _one_file(source, names, DEV_STEMS, "validation", FILE_FORMATS)
    check_file(source, dev)
    fmt = "glue" if glue_task else extension(train)
    train_table = read_table(source, train, glue_task)
    dev_table = read_table(source, dev, glue_task)
    return Folder(fmt, glue_task, tuple(sorted({train, dev})), train_table, dev_table)


def _folder_files(source: Path) -> list[str]:
    try:
        # A folder named like a data file stays listed, so that check_file can name it.
        entries = source.iterdir()
        return sorted(
            p.name
            for p in entries
            if not p.is_dir() or extension(p.name) in (*FILE_FORMATS, *CONLL_FORMATS)
        )
    except OSError as exc:
        raise unreadable(str(source), exc) from exc


def _one_file(
    source: Path, names: list[str], stems: tuple[str, ...], split: str, formats: tuple[str, ...]
) -> str:
    wanted = {f"{stem}.{ext}" for stem in stems for ext in formats}
    found = [n for n in names if n.lower() in wanted]
    if len(found) > 1:
        raise BadData(
            f"{len(found)} {split} files in {source}: {' and '.join(found)}; keep only one of them"
        )
    if not found:
        example = " or ".join(f"{stem}.<{'|'.join(formats)}>" for stem in stems)
        raise BadData(
            f"no {split} split in {source}: found {listing(names) or 'no files'}; "
            f"add {example} (or point at a datasets save_to_disk folder)"
        )
    return found[0]
