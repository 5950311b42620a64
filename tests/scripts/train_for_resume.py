"""Train a small DDCMH model with checkpoints (used by the resume and torchrun tests)."""

import sys
import time

import numpy as np

sys.path.insert(0, sys.argv[3])  # the tests folder, for engine_data
from engine_data import two_view_data

from ddcmh_core.engine.device import process_group_from_environment
from ddcmh_core.methods.ddcmh import DDCMH

run_dir, output = sys.argv[1], sys.argv[2]
slow = len(sys.argv) > 4 and sys.argv[4] == "slow"
images, texts, labels = two_view_data(n_samples=600)
training = {"max_epochs": 8, "patience": 8, "batch_size": 32}


def progress(line: str) -> None:
    print(line, flush=True)
    if slow:
        time.sleep(0.5)  # leaves the parent time to kill the process mid-run


with process_group_from_environment() as context:
    model = DDCMH(
        hasher="itq",
        n_bits=16,
        image_training=training,
        text_training=training,
        image_network={"hidden_sizes": [64]},
        text_network={"hidden_sizes": [64]},
        device="cpu",
    ).fit(images, texts, labels, run_dir=run_dir, resume=True, progress=progress)
    if context.is_main:
        np.savez(
            output,
            image_codes=model.encode_image(images),
            text_codes=model.encode_text(texts),
            validation=np.array(
                [
                    model.report_["validation_map"]["image->text"],
                    model.report_["validation_map"]["text->image"],
                ]
            ),
        )
