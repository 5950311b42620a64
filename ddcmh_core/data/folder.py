"""The folder layout of raw images and raw texts with class lists (Wikipedia dataset layout).

::

    root/
      categories.list                 one class name per line (class 1 is the first line)
      trainset_txt_img_cat.list       text_id <TAB> image_id <TAB> class (1-based)
      testset_txt_img_cat.list        same, for the test (query) items
      images/<class name>/<image_id>.jpg   (or images/<image_id>.jpg)
      texts/<text_id>.txt             (or .xml, as in the original Wikipedia release)

Rasiwasia et al.'s Wikipedia release and the Web News set (``../shared/data/web_news``) use it.
A listed item whose image (or text) file is missing is **skipped and reported** — in
``dataset.skipped`` and in a :class:`~ddcmh_core.data.errors.DatasetWarning` — never a crash;
``on_missing="error"`` makes it an error instead. Raw texts are featurised by a
:class:`~ddcmh_core.data.text.TextFeaturizer` fitted on the training texts only (words for
English, character n-grams for Chinese, detected automatically).
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .build import build_dataset
from .dataset import CrossModalDataset, SkippedItem
from .errors import DatasetError, DatasetWarning, MissingFilesError
from .image_file_view import ImageFileView
from .split import Split
from .text import TextFeaturizerParams

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEXT_EXTENSIONS = (".txt", ".xml")
PHOTO_UNUSABLE = "photo cannot be used"
"""Start of the reason of a :class:`SkippedItem` whose photo is corrupt, truncated or too large."""
_TEXT_ELEMENT = re.compile(r"<text[^>]*>(.*?)</text>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_Row = tuple[int, str, str, int]
"""A row of a list file: (line number, text_id, image_id, class)."""
_Listed = tuple[str, _Row]
"""A row with the name of its list file."""
_Located = tuple[str, _Row, Path, Path]
"""A listed item found on disk: (list file name, row, image path, text path)."""


def read_text_file(path: Path, *, encoding: str = "utf-8") -> str:
    """A raw text: the file's content, or for ``.xml`` the content of ``<text>`` without tags."""
    try:
        content = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: expected {encoding} text, got undecodable bytes at offset {exc.start} "
            "(pass encoding=... to read another encoding)"
        ) from exc
    if path.suffix.lower() == ".xml":
        match = _TEXT_ELEMENT.search(content)
        content = html.unescape(_TAG.sub(" ", match.group(1) if match else content))
    return content.strip()


def read_list(path: Path) -> list[tuple[int, str, str, int]]:
    """``(line number, text_id, image_id, class)`` rows of a ``*_txt_img_cat.list`` file."""
    if not path.is_file():
        raise MissingFilesError(f"{path}: list file not found", searched=path.parent, missing=[path.name])
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        if len(fields) != 3:
            raise DatasetError(
                f"{path}: line {number}: expected 3 fields (text_id, image_id, class), got "
                f"{len(fields)}: {line[:80]!r}"
            )
        try:
            class_id = int(fields[2])
        except ValueError as exc:
            raise DatasetError(
                f"{path}: line {number}: expected an integer class, got {fields[2]!r}"
            ) from exc
        rows.append((number, fields[0], fields[1], class_id))
    return rows


def _index_images(image_root: Path, extensions: Sequence[str]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if not image_root.is_dir():
        return found
    wanted = {e.lower() for e in extensions}
    for path in image_root.rglob("*"):
        if path.suffix.lower() in wanted and path.is_file():
            found.setdefault(path.stem.strip(), []).append(path)
    return found


def _stratified_holdout(class_ids: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    query = []
    for value in np.unique(class_ids):
        members = np.flatnonzero(class_ids == value)
        count = round(fraction * members.size)
        if members.size >= 2:
            count = min(max(count, 1), members.size - 1)
        else:
            count = 0
        query.extend(rng.choice(members, size=count, replace=False).tolist())
    return np.asarray(sorted(query), dtype=np.int64)


def read_categories(path: Path) -> tuple[str, ...] | None:
    """The class names of a ``categories.list`` file, one per non-blank line; ``None`` without the file."""
    if not path.is_file():
        return None
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def count_listed_classes(
    root: Path, lists: Sequence[tuple[str, Sequence[_Row]]], class_names: tuple[str, ...] | None
) -> int:
    """The number of classes of list files' rows, after checking that every row's class is in range.

    Parameters
    ----------
    root : Path
        The folder of the list files.
    lists : sequence of (str, sequence of rows)
        Each list file's name and its rows (:func:`read_list`), the main (training) list first.
    class_names : tuple of str, optional
        From :func:`read_categories`; without them the number of classes is the largest listed.

    Raises
    ------
    DatasetError
        No list has a row (the message names the first list, and the others that exist), or a
        class outside 1 to the number of classes (naming the list file and line).
    """
    if not any(rows for _, rows in lists):
        others = [name for name, _ in lists[1:] if (root / name).is_file()]
        also = f" (nor in {', '.join(others)})" if others else ""
        raise DatasetError(
            f"{root / lists[0][0]}: no item is listed{also}; expected lines of 3 fields "
            "(text_id, image_id, class)"
        )
    n_classes = len(class_names) if class_names else max(row[3] for _, rows in lists for row in rows)
    for list_name, rows in lists:
        for number, _, _, class_id in rows:
            if not 1 <= class_id <= n_classes:
                raise DatasetError(
                    f"{root / list_name}: line {number}: expected a class between 1 and {n_classes}, "
                    f"got {class_id}"
                )
    return n_classes


def _read_listed_rows(
    root: Path, train_list: str, test_list: str, categories: str
) -> tuple[list[_Listed], tuple[str, ...] | None, int]:
    """The rows of the train list then of the test list, the class names and the number of classes.

    The test list and the categories file are optional; without class names the number of
    classes is the largest class listed.

    Raises
    ------
    MissingFilesError
        The train list is missing.
    DatasetError
        A malformed line, no row in either list, or a class outside 1 to the number of classes.
    """
    train_rows = read_list(root / train_list)
    test_rows = read_list(root / test_list) if (root / test_list).is_file() else []
    class_names = read_categories(root / categories)
    n_classes = count_listed_classes(root, [(train_list, train_rows), (test_list, test_rows)], class_names)
    all_rows = [(train_list, row) for row in train_rows] + [(test_list, row) for row in test_rows]
    return all_rows, class_names, n_classes


def _locate_files(
    root: Path,
    rows: list[_Listed],
    class_names: tuple[str, ...] | None,
    *,
    image_dir: str,
    text_dir: str,
    image_extensions: Sequence[str],
    text_extensions: Sequence[str],
) -> tuple[list[_Located], list[SkippedItem]]:
    """Each listed item with its image and text files, and the items missing either, skipped.

    An image is looked for in the folder of its class first; one :class:`SkippedItem` is made per
    item whose image (looked for first) or text file is missing.
    """
    image_index = _index_images(root / image_dir, image_extensions)
    texts_root = root / text_dir
    kept: list[_Located] = []
    skipped: list[SkippedItem] = []
    for list_name, row in rows:
        number, text_id, image_id, class_id = row
        candidates = image_index.get(image_id, [])
        image_path = None
        if class_names:
            in_class = [p for p in candidates if p.parent.name == class_names[class_id - 1]]
            candidates = in_class or candidates
        if len(candidates) >= 1:
            image_path = candidates[0]
        expected = root / image_dir / (class_names[class_id - 1] if class_names else "") / f"{image_id}.jpg"
        text_path = next(
            (
                texts_root / f"{text_id}{ext}"
                for ext in text_extensions
                if (texts_root / f"{text_id}{ext}").is_file()
            ),
            None,
        )
        reason = ""
        if image_path is None:
            reason, shown = "image file missing", str(expected)
        elif text_path is None:
            reason, shown = "text file missing", str(texts_root / f"{text_id}{text_extensions[0]}")
        if reason:
            skipped.append(
                SkippedItem(item=text_id, reason=reason, path=shown, list_file=list_name, line=number)
            )
            continue
        assert image_path is not None and text_path is not None
        kept.append((list_name, row, image_path, text_path))
    return kept, skipped


def _refuse_missing_files(
    kept: list[_Located],
    skipped: list[SkippedItem],
    n_listed: int,
    on_missing: str,
    *,
    root: Path,
    dataset_name: str,
    image_dir: str,
    text_dir: str,
) -> None:
    """Refuse a missing file under ``on_missing="error"``, and lists of which no item has both files.

    Raises
    ------
    DatasetError
        With ``on_missing="error"``: the first skipped item, and how many there are.
    MissingFilesError
        No listed item has both its image and its text file.
    """
    if skipped and on_missing == "error":
        first = skipped[0]
        raise DatasetError(
            f"{root / first.list_file}: line {first.line}: item {first.item}: {first.reason} "
            f"({first.path}); {len(skipped)} listed items in all (pass on_missing='skip' to leave them out)"
        )
    if not kept:
        raise MissingFilesError(
            f"{dataset_name}: none of the {n_listed} listed items has both its image and its "
            f"text under {root} (first missing: {skipped[0].path if skipped else '?'})",
            dataset=dataset_name,
            searched=root,
            missing=[image_dir + "/", text_dir + "/"],
        )


def _photo_view(kept: list[_Located], image_size: tuple[int, int] | None, image_root: Path) -> ImageFileView:
    """The image view of the kept items' photos."""
    return ImageFileView([k[2] for k in kept], size=image_size, source=f"{image_root}")


def _drop_unreadable_images(
    kept: list[_Located],
    failures: list[tuple[int, str, str]],
    on_missing: str,
    root: Path,
    dataset_name: str,
) -> tuple[list[_Located], list[SkippedItem]]:
    """The items whose photo decodes, and one :class:`SkippedItem` per photo that does not.

    Raises
    ------
    DatasetError
        With ``on_missing="error"``: one message listing every photo that does not decode (the
        first 20), each with its list line and reason; and when no photo decodes.
    """
    failed = []
    for position, path, reason in failures:
        list_name, (number, text_id, _, _), _, _ = kept[position]
        failed.append(
            SkippedItem(
                item=text_id,
                reason=f"{PHOTO_UNUSABLE} ({reason})",
                path=path,
                list_file=list_name,
                line=number,
            )
        )
    if failed and on_missing == "error":
        lines = [
            f"{root / item.list_file}: line {item.line}: {item.path}: {item.reason}" for item in failed[:20]
        ]
        more = [f"... and {len(failed) - 20} more"] if len(failed) > 20 else []
        raise DatasetError(
            f"{len(failed)} of {len(kept)} listed photos cannot be used (pass on_missing='skip' to leave "
            "them out, reported):\n  " + "\n  ".join(lines + more)
        )
    bad = {position for position, _, _ in failures}
    usable = [item for position, item in enumerate(kept) if position not in bad]
    if failed and not usable:
        raise DatasetError(
            f"{dataset_name}: none of the {len(failed)} photos found can be used: {failed[0].reason}"
        )
    return usable, failed


def _one_hot_labels(kept: list[_Located], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The 0-based class of each kept item, and the (items x classes) one-hot label matrix."""
    class_ids = np.asarray([k[1][3] - 1 for k in kept], dtype=np.int64)
    labels = np.zeros((len(kept), n_classes), dtype=np.uint8)
    labels[np.arange(len(kept)), class_ids] = 1
    return class_ids, labels


def _choose_split(
    split: str,
    is_train: np.ndarray,
    class_ids: np.ndarray,
    *,
    dataset_name: str,
    train_list: str,
    test_list: str,
    holdout_fraction: float,
    seed: int,
) -> Split:
    """The lists' split, or a seeded class-stratified holdout (see :func:`load_folder_layout`).

    Called by :func:`load_folder_layout` only: its warning is reported at that function's caller.

    Raises
    ------
    DatasetError
        ``split="lists"`` with a list that has no loaded item, or ``holdout_fraction`` outside (0, 1).
    """
    n_items = len(class_ids)
    use_lists = split == "lists" or (split == "auto" and is_train.any() and (~is_train).any())
    if split == "lists" and not (is_train.any() and (~is_train).any()):
        raise DatasetError(
            f"{dataset_name}: split='lists' but the {'train' if not is_train.any() else 'test'} "
            "list has no loadable item; use split='holdout'"
        )
    if use_lists:
        train = np.flatnonzero(is_train)
        return Split(
            train=train, query=np.flatnonzero(~is_train), database=train, protocol="lists", n_items=n_items,
        )  # fmt: skip
    if split == "auto":
        empty = test_list if is_train.all() else train_list
        warnings.warn(
            f"{dataset_name}: {empty} has no loadable item, so the split is a seeded "
            f"class-stratified holdout ({holdout_fraction:.0%} of each class as queries, seed {seed})",
            DatasetWarning,
            stacklevel=3,
        )
    if not 0.0 < holdout_fraction < 1.0:
        raise DatasetError(
            f"{dataset_name}: holdout_fraction: expected a value in (0, 1), got {holdout_fraction}"
        )
    query = _stratified_holdout(class_ids, holdout_fraction, np.random.default_rng(seed))
    rest = np.setdiff1d(np.arange(n_items), query)
    return Split(
        train=rest, query=query, database=rest, protocol=f"holdout-{holdout_fraction:g}",
        seed=seed, n_items=n_items,
    )  # fmt: skip


def _featurizer_settings(text_features: TextFeaturizerParams | dict[str, Any] | None) -> dict[str, Any]:
    """The text featuriser's settings: ``min_df=2`` unless given otherwise."""
    settings: dict[str, Any] = {"min_df": 2}
    if isinstance(text_features, TextFeaturizerParams):
        settings = text_features.model_dump()
    elif text_features:
        settings.update(text_features)
    return settings


def load_folder_layout(
    root: str | Path,
    *,
    name: str | None = None,
    train_list: str = "trainset_txt_img_cat.list",
    test_list: str = "testset_txt_img_cat.list",
    categories: str = "categories.list",
    image_dir: str = "images",
    text_dir: str = "texts",
    image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
    text_extensions: Sequence[str] = TEXT_EXTENSIONS,
    on_missing: Literal["skip", "error"] = "skip",
    split: Literal["auto", "lists", "holdout"] = "auto",
    holdout_fraction: float = 0.2,
    seed: int = 0,
    text_features: TextFeaturizerParams | dict[str, Any] | None = None,
    image_size: tuple[int, int] | None = None,
    verify_images: bool = True,
    max_pixels: int | None = None,
    drop_unlabelled: bool = False,
    encoding: str = "utf-8",
) -> CrossModalDataset:
    """Load raw images and raw texts laid out as the Wikipedia dataset.

    Parameters
    ----------
    root : path
        The dataset folder.
    name : str, optional
        Dataset name (default: the folder name).
    train_list, test_list, categories : str
        File names inside ``root`` (see the module docstring).
    image_dir, text_dir : str
        Sub-folders of the images (``<class>/<image_id>.<ext>`` or ``<image_id>.<ext>``) and of
        the texts (``<text_id>.txt`` or ``.xml``).
    image_extensions, text_extensions : sequence of str
        File suffixes looked for.
    on_missing : {"skip", "error"}, default "skip"
        A listed item whose image or text file is missing (or, with ``verify_images``, does not
        decode) is skipped and reported, or is an error.
    split : {"auto", "lists", "holdout"}, default "auto"
        ``"lists"``: queries = the test list, training set = database = the train list (the
        Wikipedia protocol). ``"holdout"``: a seeded class-stratified draw of
        ``holdout_fraction`` of the loaded items as queries, the rest as training set and
        database. ``"auto"``: the lists, unless one of them has no loadable item (e.g. Web News
        here, whose test images are withheld), then the holdout, with a warning.
    holdout_fraction : float, default 0.2
        Fraction of each class drawn as queries by the holdout split.
    seed : int, default 0
        Seed of the holdout split.
    text_features : TextFeaturizerParams or dict, optional
        Featuriser settings (default: tf-idf, analyzer auto-detected, ``min_df=2``).
    image_size : (height, width), optional
        Resize images to this size when read.
    verify_images : bool, default True
        Decode every image once at load time, as the CNN pipeline reads it (JPEGs at reduced
        scale: about 1.5 s for Web News's 1,696 photos on 2 cores), and treat a corrupt,
        truncated or too large photo like a missing file (see ``on_missing``), each reported with
        its reason, so that a bad photo is found before any work starts.
    max_pixels : int, optional
        A photo that would decode to more pixels is refused from its header (default
        :data:`ddcmh_core.engine.images.MAX_DECODED_PIXELS`, 40 million).
    drop_unlabelled : bool, default False
        Unused for single-label lists (every item has a class); kept for a uniform interface.
    encoding : str, default "utf-8"
        Encoding of the text files.
    """
    root = Path(root).expanduser()
    dataset_name = name or root.name
    if not root.is_dir():
        raise MissingFilesError(
            f"{dataset_name}: folder {root} does not exist", dataset=dataset_name, searched=root,
            missing=[train_list, test_list, image_dir + "/", text_dir + "/"],
        )  # fmt: skip
    if split not in ("auto", "lists", "holdout"):
        raise DatasetError(
            f"{dataset_name}: argument 'split': expected 'auto', 'lists' or 'holdout', got {split!r}"
        )
    rows, class_names, n_classes = _read_listed_rows(root, train_list, test_list, categories)
    kept, skipped = _locate_files(
        root, rows, class_names, image_dir=image_dir, text_dir=text_dir,
        image_extensions=image_extensions, text_extensions=text_extensions,
    )  # fmt: skip
    _refuse_missing_files(
        kept, skipped, len(rows), on_missing, root=root, dataset_name=dataset_name,
        image_dir=image_dir, text_dir=text_dir,
    )  # fmt: skip
    image_view = _photo_view(kept, image_size, root / image_dir)
    if verify_images:
        failures = image_view.verify(max_pixels=max_pixels)
        kept, failed = _drop_unreadable_images(kept, failures, on_missing, root, dataset_name)
        if failed:
            skipped.extend(failed)
            image_view = _photo_view(kept, image_size, root / image_dir)
    texts = [read_text_file(k[3], encoding=encoding) for k in kept]
    class_ids, labels = _one_hot_labels(kept, n_classes)
    is_train = np.asarray([k[0] == train_list for k in kept])
    the_split = _choose_split(
        split, is_train, class_ids, dataset_name=dataset_name, train_list=train_list,
        test_list=test_list, holdout_fraction=holdout_fraction, seed=seed,
    )  # fmt: skip
    return build_dataset(
        name=dataset_name,
        labels=labels,
        label_names=class_names,
        image=image_view,
        text=None,
        texts=texts,
        item_ids=[k[1][1] for k in kept],
        split=the_split,
        skipped=skipped,
        text_features=_featurizer_settings(text_features),
        drop_unlabelled=drop_unlabelled,
        source={
            "root": str(root),
            "layout": "folder (Wikipedia layout)",
            "lists": [train_list, test_list],
            "split": the_split.protocol,
        },
    )


def load_web_news(data_dir: str | Path | None, **options: Any) -> CrossModalDataset:
    """Web News (Chinese news photos + captions) in the Wikipedia folder layout.

    Texts are featurised with character n-grams (detected automatically). Where the test images
    are withheld (as in ``../shared/data/web_news``) the split falls back to a seeded
    class-stratified holdout of the items that have images (see :func:`load_folder_layout`).
    """
    if data_dir is None:
        raise MissingFilesError(
            "web-news: no data folder given (pass data_dir=... / --data-dir, or set DDCMH_DATA_DIR)",
            dataset="web-news",
            missing=["trainset_txt_img_cat.list", "categories.list", "images/", "texts/"],
        )
    options.setdefault("name", "web-news")
    return load_folder_layout(data_dir, **options)
