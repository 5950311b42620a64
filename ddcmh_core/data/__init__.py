"""Datasets: two views, multi-hot labels and a train / query / database split.

Public names
------------
load_dataset, DEFAULT_DATASET
    Load a registered dataset by name (``uci-mfeat``, ``wikipedia``, ``mirflickr25k``,
    ``nus-wide``, ``iapr-tc12``, ``ms-coco``, ``web-news``) or users' own file by path.
CrossModalDataset, DatasetFingerprint, SkippedItem
    The dataset every other part consumes (``image`` / ``text`` views, ``labels``, ``split``,
    ``fingerprint``, ``view_kinds``).
Split, SplitProtocol, STANDARD_PROTOCOLS, make_split
    Seeded, reproducible splits under the field's protocols; ``Split.carve_validation`` takes a
    validation set from the training items only; ``Split.save`` / ``Split.load``.
View, DenseView, SparseView, HDF5View, ImageFileView
    Row-addressable views (in memory, lazy HDF5 / MATLAB v7.3, image files).
TextFeaturizer, TextFeaturizerParams
    Bag-of-words / tf-idf for raw texts (words, Chinese character n-grams, tags).
DatasetSpec, DatasetFile, DatasetRegistry, dataset_registry, describe_datasets
    The ``ddcmh_datasets`` plugin hook's record and the registry built from it.
load_array_files, load_generic, load_folder_layout, load_uci_mfeat, open_array_file
    The loaders behind the names, for direct use.
DatasetError, MissingFilesError, DatasetWarning
    What goes wrong, with the file, key or row named.
"""

from .array_files import load_array_files
from .dataset import CrossModalDataset, DatasetFingerprint, SkippedItem, label_matrix
from .errors import DatasetError, DatasetWarning, MissingFilesError
from .folder import load_folder_layout
from .formats import ArrayFile, open_array_file
from .hdf5_view import HDF5View
from .image_file_view import ImageFileView
from .loaders import load_generic
from .registry import (
    DATA_DIR_ENV,
    DEFAULT_DATASET,
    DatasetFile,
    DatasetRegistry,
    DatasetSpec,
    dataset_registry,
    describe_datasets,
    load_dataset,
)
from .split import STANDARD_PROTOCOLS, Split, SplitProtocol, make_split
from .text import TextFeaturizer, TextFeaturizerParams
from .uci_mfeat import default_cache_dir, ensure_uci_mfeat, load_uci_mfeat
from .views import ConcatView, DenseView, IndexedView, SparseView, View, as_view

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATASET",
    "STANDARD_PROTOCOLS",
    "ArrayFile",
    "ConcatView",
    "CrossModalDataset",
    "DatasetError",
    "DatasetFile",
    "DatasetFingerprint",
    "DatasetRegistry",
    "DatasetSpec",
    "DatasetWarning",
    "DenseView",
    "HDF5View",
    "ImageFileView",
    "IndexedView",
    "MissingFilesError",
    "SkippedItem",
    "SparseView",
    "Split",
    "SplitProtocol",
    "TextFeaturizer",
    "TextFeaturizerParams",
    "View",
    "as_view",
    "dataset_registry",
    "default_cache_dir",
    "describe_datasets",
    "ensure_uci_mfeat",
    "label_matrix",
    "load_array_files",
    "load_dataset",
    "load_folder_layout",
    "load_generic",
    "load_uci_mfeat",
    "make_split",
    "open_array_file",
]
