"""Trains the semi-supervised GAN of Salimans et al. (2016) (`dgm_course.semi_supervised`) with N
labels per class and the rest of the training images unlabelled, and prints its test accuracy
next to a supervised classifier of the same size trained on the same labels: the same
discriminator network (same builder, noise and initialisation), its class logits trained with
the cross-entropy on the labelled images alone.

Settings (the paper's MNIST code, `train_mnist_feature_matching.py`): images in [0, 1], batches
of 100 labelled and 100 unlabelled images, Adam(3e-3, beta_1=0.5) for both players, the
unsupervised loss weighted by 0.5 (its code halves it), data-dependent initialisation on 500
unlabelled images; classification by an exponential moving average of the discriminator's
weights (decay 0.999; the paper averages too, with 0.9999 over 300 epochs). One epoch is one pass
over the unlabelled images. Prints a line per epoch (seconds, test accuracy), then a Markdown
table.

Usage:
    python benchmarks/semi_supervised.py [--datasets mnist,fashion_mnist] [--labels-per-class 10]
        [--epochs 20] [--seeds 0,1] [--baseline-steps 2000] [--data-dir ../shared/data]
    (about 30 s per epoch on 2 CPU cores; --quick: 2,000 images, 1 epoch, a smoke test)
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dgm_course import data, preprocessing, semi_supervised, splits  # noqa: E402
from dgm_course.environment import set_seed  # noqa: E402

BATCH_SIZE = 100
LEARNING_RATE = 3e-3
UNSUPERVISED_WEIGHT = 0.5  # The paper's code: loss_unl = 0.5 * (its two terms).
EMA = 0.999
INIT_IMAGES = 500


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--baseline-steps", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny data and one epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.baseline_steps = 1, 20
    return args


def load(name, *, data_dir, quick):
    """Returns (x_train, y_train, x_test, y_test) with images in [0, 1]."""
    dataset = data.load_dataset(name, data_dir=data_dir, verbose=False)
    if quick:
        dataset = dataset.subset(n_train=2000, n_test=500, seed=0)
    return (preprocessing.normalize(dataset.x_train, value_range=(0.0, 1.0)), dataset.y_train,
            preprocessing.normalize(dataset.x_test, value_range=(0.0, 1.0)), dataset.y_test)


def fresh_discriminator(image_shape, x_init, seed):
    """The discriminator of both contenders: built with `seed`, initialised on real images."""
    set_seed(seed)  # The initial weights.
    return semi_supervised.initialize_from_data(
        semi_supervised.build_discriminator(image_shape, seed=seed), x_init)


class EpochReport(keras.callbacks.Callback):
    """Prints each epoch's seconds and the test accuracy of `model.classify`, and keeps them."""

    def __init__(self, model, x_test, y_test, label):
        super().__init__()
        self.classifier, self.x_test, self.y_test, self.label = model, x_test, y_test, label
        self.seconds, self.accuracies = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.accuracies.append(float(np.mean(self.classifier.classify(self.x_test) == self.y_test)))
        print(f"{self.label} epoch {epoch + 1}: {self.seconds[-1]:.1f} s, test accuracy "
              f"{self.accuracies[-1]:.4f}, supervised {logs['supervised']:.3f}, "
              f"unsupervised {logs['unsupervised']:.3f}, g_loss {logs['g_loss']:.1f}", flush=True)


def run(x_train, y_train, x_test, y_test, *, labels_per_class, epochs, seed, baseline_steps,
        label=""):
    """Trains both contenders on one labelled split; returns a dict of the results."""
    labelled, unlabelled = splits.labelled_unlabelled_split(y_train, labels_per_class, seed=seed)
    image_shape, x_init = x_train.shape[1:], x_train[unlabelled[:INIT_IMAGES]]
    discriminator = fresh_discriminator(image_shape, x_init, seed)
    model = semi_supervised.SemiSupervisedGAN(
        semi_supervised.build_generator(image_shape), discriminator, latent_dim=100, seed=seed,
        unsupervised_weight=UNSUPERVISED_WEIGHT, ema=EMA)
    model.compile(d_optimizer=keras.optimizers.Adam(LEARNING_RATE, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(LEARNING_RATE, beta_1=0.5))
    dataset = semi_supervised.make_semi_supervised_dataset(
        x_train[labelled], y_train[labelled], x_train[unlabelled], batch_size=BATCH_SIZE,
        seed=seed)
    report = EpochReport(model, x_test, y_test, label)
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[report])
    start = time.perf_counter()
    baseline = semi_supervised.train_supervised_baseline(
        fresh_discriminator(image_shape, x_init, seed), x_train[labelled], y_train[labelled],
        steps=baseline_steps, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed)
    baseline_seconds = time.perf_counter() - start
    _, baseline_accuracy = baseline.evaluate(x_test, y_test, batch_size=500, verbose=0)
    return {"labels": len(labelled), "epochs": epochs, "seed": seed,
            "seconds_per_epoch": sum(report.seconds) / epochs,
            "accuracy": report.accuracies[-1], "best_accuracy": max(report.accuracies),
            "curve": report.accuracies, "baseline_accuracy": float(baseline_accuracy),
            "baseline_seconds": baseline_seconds}


def markdown(rows):
    """The results as a Markdown table, one row per dataset and seed."""
    lines = ["| dataset | labels | seed | epochs | s/epoch | semi-supervised GAN (best epoch) "
             "| supervised, same network |", "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['labels']} | {r['seed']} | {r['epochs']} | "
                     f"{r['seconds_per_epoch']:.1f} | {r['accuracy']:.2%} "
                     f"({r['best_accuracy']:.2%}) | {r['baseline_accuracy']:.2%} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse(argv)
    rows = []
    for name in args.datasets.split(","):
        arrays = load(name, data_dir=args.data_dir, quick=args.quick)
        for seed in (int(s) for s in args.seeds.split(",")):
            result = run(*arrays, labels_per_class=args.labels_per_class, epochs=args.epochs,
                         seed=seed, baseline_steps=args.baseline_steps, label=f"{name} seed {seed}")
            rows.append((name, result))
            print(f"{name} seed {seed}: supervised baseline {result['baseline_accuracy']:.4f} "
                  f"({result['baseline_seconds']:.0f} s for {args.baseline_steps} steps)")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
