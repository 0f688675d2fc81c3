"""A folder written by ``datasets``' ``save_to_disk``: its splits as tables, checked before
``datasets`` reads anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BadData
from .files import check_file, check_inside
from .messages import listing, one_line, show
from .readers import arrow_values
from .rules import DEV_STEMS
from .tables import Folder, Table


def read_saved_dataset(source: Path) -> Folder:
    files = _all_files(source)
    splits = _load_dataset_dict(source)
    dev_names = [s for s in DEV_STEMS if s in splits]
    if "train" not in splits or len(dev_names) != 1:
        need = "a train split" if "train" not in splits else "one validation (or dev) split"
        raise BadData(
            f"the saved dataset in {source} has splits {listing(list(splits))}; it needs {need}: "
            "re-save a DatasetDict with train and validation"
        )
    train, dev = (_dataset_table(splits[s], s) for s in ("train", dev_names[0]))
    return Folder("datasets", None, files, train, dev)


def _all_files(source: Path) -> tuple[str, ...]:
    """Every file under ``source``, checked; symlinked folders are not walked into (a link that
    stays inside only repeats files already listed; one that leaves is refused)."""
    files = []
    for root, dirs, names in os.walk(source):
        base = Path(root).relative_to(source)
        for d in dirs:
            check_inside(source, (base / d).as_posix())
        dirs[:] = sorted(d for d in dirs if not (source / base / d).is_symlink())
        files += [(base / n).as_posix() for n in names]
    for name in files:
        check_file(source, name)
    return tuple(sorted(files))


def _load_dataset_dict(source: Path) -> Any:
    import datasets  # slow to import: only for folders that need it

    _check_saved_splits(source)
    try:
        splits = datasets.load_from_disk(str(source))
    except Exception as exc:  # noqa: BLE001
        # datasets reads its json and arrow files deep inside; a damaged folder surfaces as
        # whatever broke there (KeyError, IndexError, ArrowInvalid, ...), never as one type.
        raise BadData(
            f"cannot load the saved dataset in {source} ({type(exc).__name__}: "
            f"{one_line(exc)}); re-save it with DatasetDict.save_to_disk"
        ) from exc
    if not isinstance(splits, datasets.DatasetDict):
        raise BadData(f"{source} holds a single Dataset; re-save it as a DatasetDict with splits")
    return splits


def _check_saved_splits(source: Path) -> None:
    """Refuse what datasets would trip on or follow out of the folder: each split named in
    dataset_dict.json is a folder here, and each data file its state.json lists is in that
    folder. An empty split lists none (save_to_disk writes no arrow file for it), and datasets
    cannot load that."""
    for split in _saved_list(source, "dataset_dict.json", "splits"):
        if not _plain_name(split) or not (source / split).is_dir():
            raise _bad_saved(source, f"dataset_dict.json names split {show(split)}, no folder here")
        files = _saved_list(source, f"{split}/state.json", "_data_files")
        names = [f.get("filename") if isinstance(f, dict) else None for f in files]
        if not names and split in ("train", *DEV_STEMS):
            raise BadData(f"split {split!r} in {source} has no data rows; add rows to it")
        for name in names:
            if not _plain_name(name) or not (source / split / name).is_file():
                raise _bad_saved(source, f"split {split!r} lacks its data file {show(name)}")


def _saved_list(source: Path, name: str, key: str) -> list[Any]:
    """The list under ``key`` in ``name``, a JSON file of a saved dataset."""
    try:
        raw = json.loads((source / name).read_bytes())
    except (OSError, RecursionError, ValueError) as exc:  # ValueError: bad JSON or encoding
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise _bad_saved(source, f"{name}: {problem}") from exc
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, list):
        raise _bad_saved(source, f"{name} holds no {key!r} list")
    return value


def _plain_name(name: Any) -> bool:
    """A file or folder name that stays in its folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and not set(name) & set("/\\")


def _bad_saved(source: Path, problem: str) -> BadData:
    return BadData(
        f"cannot load the saved dataset in {source} ({problem}); "
        "re-save it with DatasetDict.save_to_disk"
    )


def _dataset_table(ds: Any, split: str) -> Table:
    import datasets

    name = f"split {split!r}"
    listed = _listed_class_names(ds.features)

    def column(field: str) -> list[Any]:
        values = arrow_values(ds.with_format("arrow")[:], name, field)
        feature = ds.features.get(field)
        if isinstance(feature, datasets.ClassLabel):
            values = _class_names(values, feature.names, name)
        return values

    return Table(name, tuple(ds.column_names), ds.num_rows, column, class_names=listed)


def _listed_class_names(features: Any) -> dict[str, tuple[str, ...]]:
    """The names of each column that holds a list of ClassLabel ints per row (``ner_tags``): the
    tagging data reads the ints as these names."""
    import datasets

    return {
        field: tuple(feature.feature.names)
        for field, feature in features.items()
        if isinstance(getattr(feature, "feature", None), datasets.ClassLabel)
    }


def _class_names(values: list[Any], names: list[str], split: str) -> list[str | None]:
    """ClassLabel ints -> their names; -1, datasets' mark for "no label", reads as missing."""
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is not None and value >= len(names):
            raise BadData(
                f"{split} row {i + 1}: label {value} is outside the {len(names)} ClassLabel "
                "names; fix the label"
            )
        out.append(None if value is None or value < 0 else names[value])
    return out
