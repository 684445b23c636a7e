"""Trains a conditional VAE on MNIST, classifies the test images by Bayes' rule over its class
likelihoods, and prints what notebooks/10_generative_classification.ipynb reports about it:

- test accuracy with the conditional ELBO (k = 1) and with the importance-weighted bound (k);
- calibration (expected calibration error, 15 bins) against the course's discriminative CNN
  (`metrics.train_reference_classifier`) trained on the same images;
- rejection: log p(x) = logsumexp_y log p(x | y) p(y) as the score that refuses images of no
  known class (Fashion-MNIST test items), as the share of them refused while 95% of the MNIST
  test images are kept, and the AUROC; the CNN's largest softmax probability for comparison;
- the seconds each phase took.

Usage:
    python benchmarks/bayes_classifier.py --data-dir ../shared/data [--epochs 12]
        [--latent-dim 16] [--width 32] [--batch-size 64] [--learning-rate 2e-3] [--k 10]
        [--iw-images 10000] [--seed 0] [--quick]
    (about 8 minutes on 2 CPU cores; --quick: a few hundred images, one epoch, tiny networks:
    a smoke test whose numbers mean nothing)
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUICK = {"epochs": 1, "width": 8, "k": 2, "classifier_epochs": 1, "train_images": 512,
         "test_images": 200}


def parse(argv):
    """The command line's options (--quick overrides the sizes with QUICK's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with MNIST and Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=12, help="conditional VAE epochs")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--width", type=int, default=32, help="channels of the first convolution")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="Adam's initial rate, decayed to 0 by a cosine over the epochs")
    parser.add_argument("--k", type=int, default=10, help="importance samples per image and class")
    parser.add_argument("--iw-images", type=int, default=None,
                        help="test images (and Fashion-MNIST items) given the k-sample bound; "
                             "default all")
    parser.add_argument("--classifier-epochs", type=int, default=2, help="the CNN's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny and fast")
    args = parser.parse_args(argv)
    args.train_images = args.test_images = None
    if args.quick:
        vars(args).update(QUICK)
    return args


def load(args):
    """(x_train, y_train, x_test, y_test, x_unknown): uint8 MNIST and Fashion-MNIST test images."""
    from dgm_course import data

    mnist = data.load_dataset("mnist", data_dir=args.data_dir)
    fashion = data.load_dataset("fashion_mnist", data_dir=args.data_dir, fallback=False)
    return mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test, fashion.x_test


def train_cvae(x_train, y_train, args):
    """A ConditionalVAE with Bernoulli pixels (grey levels in [0, 1]) trained on the images,
    Adam's learning rate decayed from args.learning_rate to 0 along a cosine."""
    import keras

    from dgm_course import conditional_vae, environment, preprocessing

    environment.set_seed(args.seed)
    train = preprocessing.make_dataset(x_train, y_train, batch_size=args.batch_size,
                                       seed=args.seed, value_range=(0.0, 1.0))
    model = conditional_vae.ConditionalVAE(
        conditional_vae.build_conditional_encoder(latent_dim=args.latent_dim, width=args.width),
        conditional_vae.build_conditional_decoder(latent_dim=args.latent_dim, width=args.width),
        num_classes=10, likelihood="bernoulli", seed=args.seed)
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    model.fit(train, epochs=args.epochs, verbose=2)
    return model


def classifier_row(name, probabilities, labels, seconds):
    """One row of the accuracy table: name, images, accuracy, ECE, seconds."""
    from dgm_course import generative_classifier as gc

    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    return [name, f"{len(labels):,}", f"{accuracy:.2%}",
            f"{gc.expected_calibration_error(probabilities, labels):.4f}", f"{seconds:.0f}"]


def rejection_row(name, scores_known, scores_unknown):
    """One row of the rejection table: score, refused at 95% kept, AUROC."""
    from dgm_course import generative_classifier as gc

    curve = gc.rejection_curve(scores_known, scores_unknown)
    return [name, f"{curve.refused_at(0.95):.2%}", f"{curve.auroc:.4f}"]


def bayes_rows(model, x_test, y_test, x_unknown, log_prior, args):
    """Accuracy and rejection rows of the Bayes classifier, ELBO then the k-sample bound."""
    from dgm_course import generative_classifier as gc

    accuracy, rejection = [], []
    subset = len(x_test) if args.iw_images is None else args.iw_images
    for k, count in ((1, len(x_test)), (args.k, subset)):
        start = time.perf_counter()
        known = gc.class_log_likelihoods(model, x_test[:count], k=k, seed=args.seed)
        unknown = gc.class_log_likelihoods(model, x_unknown[:count], k=k, seed=args.seed + 1)
        seconds = time.perf_counter() - start
        name = "ELBO (k = 1)" if k == 1 else f"importance-weighted, k = {k}"
        accuracy.append(classifier_row(f"Bayes, conditional VAE, {name}",
                                       gc.bayes_posterior(known, log_prior), y_test[:count],
                                       seconds))
        rejection.append(rejection_row(f"log p(x), {name}", gc.log_evidence(known, log_prior),
                                       gc.log_evidence(unknown, log_prior)))
    return accuracy, rejection


def reference_probabilities(x_train, y_train, x_test, x_unknown, args):
    """The discriminative CNN trained on uint8 (x_train, y_train): its softmax probabilities
    {"known": on x_test, "unknown": on x_unknown}, each float64 (n, 10)."""
    import numpy as np

    from dgm_course import metrics, preprocessing

    classifier = metrics.train_reference_classifier(
        preprocessing.normalize(x_train), y_train, epochs=args.classifier_epochs, seed=args.seed)
    probabilities = {}
    for name, images in (("known", x_test), ("unknown", x_unknown)):
        logits = classifier.predict(preprocessing.normalize(images), batch_size=256, verbose=0)
        # softmax(l) = exp(l - max l) / sum exp(l - max l), in float64  # (n, 10)
        shifted = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
        probabilities[name] = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities


def reference_rows(x_train, y_train, x_test, y_test, x_unknown, args):
    """The discriminative CNN's accuracy row and its max-softmax rejection row."""
    start = time.perf_counter()
    probabilities = reference_probabilities(x_train, y_train, x_test, x_unknown, args)
    seconds = time.perf_counter() - start
    epochs = args.classifier_epochs
    name = f"discriminative CNN ({epochs} epoch{'s' if epochs != 1 else ''})"
    return (classifier_row(name, probabilities["known"], y_test, seconds),
            rejection_row(f"largest softmax probability, {name}", probabilities["known"].max(axis=1),
                          probabilities["unknown"].max(axis=1)))


def table(header, rows):
    """A Markdown table: text columns left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def run(arrays, args):
    """Trains, evaluates and returns the report as Markdown text."""
    import numpy as np

    from dgm_course import generative_classifier as gc

    x_train, y_train, x_test, y_test, x_unknown = arrays
    if args.train_images:
        x_train, y_train = x_train[:args.train_images], y_train[:args.train_images]
        x_test, y_test = x_test[:args.test_images], y_test[:args.test_images]
        x_unknown = x_unknown[:args.test_images]
    start = time.perf_counter()
    model = train_cvae(x_train, y_train, args)
    train_seconds = time.perf_counter() - start
    log_prior = gc.log_prior_from_labels(y_train, 10)
    known01, unknown01 = (images.astype(np.float32) / 255.0 for images in (x_test, x_unknown))
    accuracy, rejection = bayes_rows(model, known01, y_test, unknown01, log_prior, args)
    cnn_accuracy, cnn_rejection = reference_rows(x_train, y_train, x_test, y_test, x_unknown,
                                                 args)
    return "\n".join([
        "## Bayes classifier from a conditional VAE (MNIST)", "",
        f"- {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; conditional VAE: "
        f"latent_dim {args.latent_dim}, width {args.width}, epochs {args.epochs}, Adam "
        f"{args.learning_rate:g} with cosine decay, "
        f"{len(x_train):,} training images, {train_seconds:.0f} s; seed {args.seed}", "",
        table(["classifier", "test images", "accuracy", "ECE (15 bins)", "seconds"],
              accuracy + [cnn_accuracy]), "",
        "Seconds: for the Bayes rows, log p(x | y) of the MNIST test images and of as many "
        "Fashion-MNIST items; for the CNN, its training and predictions.", "",
        "Rejection of Fashion-MNIST test items (unknown) against MNIST test images (known):", "",
        table(["score", "unknown refused at 95% known kept", "AUROC"],
              rejection + [cnn_rejection]), "",
        f"Total: {time.perf_counter() - start:.0f} s."])


def main(argv=None):
    args = parse(argv)
    print(run(load(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
