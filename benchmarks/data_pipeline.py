"""Times the data chapter's helpers on full data: loading, the cleaning checks, and the
tf.data pipeline's throughput against a naive per-image pipeline.

Usage:
    python benchmarks/data_pipeline.py --data-dir ../shared/data [--dataset fashion_mnist]
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(label, function, *args, **kwargs):
    """Runs `function`, prints its wall time, and returns its result."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label:48} {time.perf_counter() - start:8.2f} s", flush=True)
    return result


def images_per_second(dataset, n_images):
    """Images per second over one full pass of `dataset`, after a first (warming) pass."""
    for _ in dataset:
        pass
    start = time.perf_counter()
    for _ in dataset:
        pass
    return n_images / (time.perf_counter() - start)


def pipelines(x_train, y_train, dataset_name):
    """Prints the throughput of the course's pipeline and of a naive one."""
    import tensorflow as tf

    from dgm_course import preprocessing

    augment = preprocessing.augmentation(dataset_name, seed=0)
    tuned = preprocessing.make_dataset(x_train, y_train, batch_size=128, augment=augment)
    naive = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=0)
    naive = naive.map(lambda x, y: (augment(tf.cast(x, tf.float32) / 127.5 - 1, training=True), y))
    naive = naive.batch(128)
    for name, dataset in (("naive: per image, no cache, no prefetch", naive),
                          ("make_dataset: cache, batched augment, prefetch", tuned)):
        rate = images_per_second(dataset, len(x_train))
        print(f"{name:48} {rate:8,.0f} images/s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("DGM_DATA_DIR"))
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--pipeline-images", type=int, default=20_000)
    args = parser.parse_args(argv)

    from dgm_course import cleaning, data

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    dataset = timed("load_dataset", data.load_dataset, args.dataset, data_dir=args.data_dir,
                    verbose=False)
    print(dataset.source)
    x_train, y_train, x_test = dataset.x_train, dataset.y_train, dataset.x_test
    within = timed("find_duplicates within train", cleaning.find_duplicates, x_train)
    across = timed("find_duplicates train vs test", cleaning.find_duplicates, x_train, x_test)
    print(f"  {len(within.exact_pairs)} exact / {len(within.near_pairs)} near pairs within train, "
          f"{len(across.exact_pairs)} exact / {len(across.near_pairs)} near across")
    suspects = timed("suspicious_labels (k=10)", cleaning.suspicious_labels, x_train, y_train)
    print(f"  {len(suspects.indices)} images whose neighbours mostly carry another label")
    n = min(args.pipeline_images, len(x_train))
    pipelines(x_train[:n], y_train[:n], dataset.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
