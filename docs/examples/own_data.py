"""Quickstart, your own data: write paired views to HDF5, train DDCMH, evaluate, save, search.

Run it in an empty folder; it writes my_pairs.h5 and ddcmh-model.h5 there. The network and epoch
settings are tiny so that it finishes in seconds; leave them out for real data.
"""

import h5py
import numpy as np

from ddcmh_core.data import load_dataset
from ddcmh_core.evaluation.index import HammingIndex
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor
from ddcmh_core.methods.ddcmh import DDCMH

# --8<-- [start:write]
# 1. Your data: one row per item in each view, and a {0,1} label matrix.
rng = np.random.default_rng(0)
n_items, n_classes = 600, 6
labels = np.zeros((n_items, n_classes), dtype=np.uint8)
labels[np.arange(n_items), rng.integers(0, n_classes, n_items)] = 1
image = labels @ rng.normal(size=(n_classes, 64)) + 1.5 * rng.normal(size=(n_items, 64))
text = rng.poisson(0.2 + labels @ rng.uniform(0, 1, size=(n_classes, 300)))  # word counts

with h5py.File("my_pairs.h5", "w") as handle:
    handle["image"] = image.astype(np.float32)  # or images, XAll, image_features ...
    handle["text"] = text.astype(np.float32)  # or texts, YAll, tags ...
    handle["labels"] = labels  # or LAll, or a vector of class ids
# --8<-- [end:write]

# --8<-- [start:train]
# 2. Load it: the views stay on disk, and a seeded split is drawn (stored split keys win).
data = load_dataset("my_pairs.h5")
split = data.split  # train / query / database row indices
print(data)

# 3. Train the three stages on the training pairs.
model = DDCMH(
    hasher="itq",
    n_bits=32,
    image_network={"hidden_sizes": [64]},  # small and short, for the example only
    text_network={"hidden_sizes": [64]},
    image_training={"max_epochs": 3},
    text_training={"max_epochs": 3},
)
model.fit(data.image.take(split.train), data.text.take(split.train), data.labels[split.train])

# 4. Encode each modality with its own network and rank by Hamming distance.
query_codes = model.encode_image(data.image.take(split.query))  # image queries
database_codes = model.encode_text(data.text.take(split.database))  # text database
image_to_text = mean_average_precision(
    query_codes, database_codes, data.labels[split.query], data.labels[split.database]
)
floor = random_code_floor(data.labels[split.query], data.labels[split.database], n_bits=32)
print(f"image->text MAP@all {float(image_to_text):.3f} (random codes: {float(floor):.3f})")
# --8<-- [end:train]

# --8<-- [start:save]
# 5. One file holds the whole model; search a database of codes.
model.save("ddcmh-model.h5")
model = DDCMH.load("ddcmh-model.h5")
index = HammingIndex(n_bits=32)
index.add(database_codes, ids=split.database)  # ids: the database rows
distances, ids = index.search(model.encode_image(data.image.take(split.query[:3])), k=5)
print(ids)  # the 5 nearest texts of the first 3 image queries
# --8<-- [end:save]
