"""Reproduces the results table of notebooks/10_generative_classification.ipynb with one command
and prints it (`dgm_course.classification_results.results_table`, the notebook's own code), with
the settings of the notebook's `cpu` profile:

- the semi-supervised GAN of Salimans et al. (2016) on MNIST and Fashion-MNIST with 10 labels per
  class, and the supervised network of the same size on the same labels
  (`benchmarks/semi_supervised.py`'s `run`);
- the Bayes classifier of a conditional VAE trained on all MNIST labels, by the ELBO and by the
  importance-weighted bound, and the discriminative CNN (`benchmarks/bayes_classifier.py`'s
  `train_cvae` and `reference_probabilities`);
- augmentation: the CNN on 50 real labelled digits per class, on them plus a conditional GAN's
  images (the GAN trained on those labelled images only), and on the generated images alone
  (the Classification Accuracy Score).

Usage:
    python benchmarks/generative_classification.py --data-dir ../shared/data [--seed 0] [--quick]
    (about 30 minutes on 2 CPU cores; --quick: slices of the data, one epoch, tiny networks:
    a smoke test whose numbers mean nothing)
"""

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The notebook's cpu profile; --quick replaces these with QUICK's.
CPU = {"mnist_epochs": 24, "fashion_epochs": 4, "baseline_steps": 2000, "cvae_epochs": 12,
       "width": 32, "iw_images": 1000, "classifier_epochs": 2, "cgan_steps": 1000,
       "generated_per_class": 500, "classifier_steps": 400, "train_images": None,
       "test_images": None}
QUICK = {"mnist_epochs": 1, "fashion_epochs": 1, "baseline_steps": 20, "cvae_epochs": 1,
         "width": 8, "iw_images": 50, "classifier_epochs": 1, "cgan_steps": 20,
         "generated_per_class": 20, "classifier_steps": 10, "train_images": 1000,
         "test_images": 500}
LABELS_PER_CLASS = 10
AUGMENT_LABELS_PER_CLASS = 50
IW_K = 10


def sibling(name):
    """Imports benchmarks/<name>.py, whose functions this benchmark reuses."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with MNIST and Fashion-MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny and fast")
    args = parser.parse_args(argv)
    vars(args).update(QUICK if args.quick else CPU)
    # What benchmarks/bayes_classifier.py's train_cvae reads.
    args.latent_dim, args.batch_size, args.learning_rate, args.epochs = 16, 64, 2e-3, \
        args.cvae_epochs
    return args


def load(name, args):
    """The uint8 Dataset `name`, sliced as the notebook's smoke profile slices it in --quick."""
    from dgm_course import data

    dataset = data.load_dataset(name, data_dir=args.data_dir, verbose=False,
                                fallback=name == "mnist")
    if args.train_images is not None:
        dataset = dataset.subset(n_train=args.train_images, n_test=args.test_images,
                                 seed=args.seed)
    return dataset


def semi_supervised_results(datasets, args):
    """{key: Measured} of the semi-supervised GAN and its supervised baseline, per dataset."""
    from dgm_course import preprocessing
    from dgm_course.classification_results import Measured

    benchmark, results = sibling("semi_supervised"), {}
    def scale(images):
        return preprocessing.normalize(images, value_range=(0.0, 1.0))

    for name, epochs in (("mnist", args.mnist_epochs), ("fashion_mnist", args.fashion_epochs)):
        dataset = datasets[name]
        result = benchmark.run(scale(dataset.x_train), dataset.y_train, scale(dataset.x_test),
                               dataset.y_test, labels_per_class=LABELS_PER_CLASS, epochs=epochs,
                               seed=args.seed, baseline_steps=args.baseline_steps, label=name)
        results[f"semi_supervised_gan/{name}"] = Measured(result["accuracy"], result["labels"])
        results[f"supervised/{name}"] = Measured(result["baseline_accuracy"], result["labels"])
    return results


def bayes_results(digits, clothes, args):
    """{key: Measured} of the Bayes classifier (ELBO, k-sample bound) and the CNN."""
    import numpy as np

    from dgm_course import generative_classifier as gc
    from dgm_course.classification_results import Measured

    benchmark = sibling("bayes_classifier")
    model = benchmark.train_cvae(digits.x_train, digits.y_train, args)
    log_prior = gc.log_prior_from_labels(digits.y_train, 10)
    x_known, y_known = digits.x_test.astype(np.float32) / 255.0, digits.y_test
    accuracy = {}
    for key, k, count in (("bayes_elbo/mnist", 1, len(y_known)),
                          ("bayes_iw/mnist", IW_K, args.iw_images)):
        log_likelihoods = gc.class_log_likelihoods(model, x_known[:count], k=k, seed=args.seed)
        accuracy[key] = np.mean(gc.predict(log_likelihoods, log_prior) == y_known[:count])
    probabilities = benchmark.reference_probabilities(digits.x_train, digits.y_train,
                                                      digits.x_test, clothes.x_test, args)
    accuracy["cnn/mnist"] = np.mean(probabilities["known"].argmax(axis=1) == y_known)
    return {key: Measured(float(value), len(digits.y_train)) for key, value in accuracy.items()}


def train_cgan(images, labels, args):
    """The notebook's conditional GAN trained for args.cgan_steps steps on uint8 images."""
    import keras

    from dgm_course import conditional, conditional_gan, preprocessing
    from dgm_course.environment import set_seed

    set_seed(args.seed)
    width = 8 if args.quick else 32
    model = conditional_gan.ConditionalGAN(
        conditional.build_conditional_generator(latent_dim=64, width=width),
        conditional.build_projection_discriminator(width=width),
        latent_dim=64, num_classes=10, seed=args.seed, ema=0.999)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    batches = preprocessing.make_dataset(images, labels, batch_size=64, seed=args.seed,
                                         drop_remainder=True)
    model.fit(batches.repeat().take(args.cgan_steps), epochs=1, verbose=2)
    return model


def augmentation_results(digits, args):
    """{key: Measured}: the CNN on few real labels, plus generated images, generated only."""
    import numpy as np

    from dgm_course import evaluation, metrics, preprocessing, splits
    from dgm_course.classification_results import Measured

    few = splits.balanced_indices(digits.y_train, AUGMENT_LABELS_PER_CLASS, seed=args.seed)
    x_few, y_few = preprocessing.normalize(digits.x_train[few]), digits.y_train[few]
    x_test = preprocessing.normalize(digits.x_test)
    cgan = train_cgan(digits.x_train[few], y_few, args)
    per_class = args.generated_per_class
    generated_labels = np.repeat(np.arange(10), per_class)
    generated = np.concatenate([cgan.generate_class(label, per_class, seed=100 + label)
                                for label in range(10)])

    def epochs_for(images):  # About args.classifier_steps steps of 128 images each.
        return max(1, -(-args.classifier_steps * 128 // len(images)))

    def accuracy(images, labels):
        classifier = metrics.train_reference_classifier(images, labels, epochs=epochs_for(images),
                                                        seed=args.seed, verbose=False)
        return metrics.classifier_report(classifier, x_test, digits.y_test).accuracy

    cas = evaluation.classification_accuracy_score(
        (generated, generated_labels), (x_test, digits.y_test), epochs=epochs_for(generated),
        seed=args.seed).accuracy
    mixed = accuracy(np.concatenate([x_few, generated]), np.concatenate([y_few, generated_labels]))
    return {"augmentation_real/mnist": Measured(accuracy(x_few, y_few), len(few)),
            "augmentation_mixed/mnist": Measured(mixed, len(few)),
            "cas/mnist": Measured(cas, len(few))}


def run(datasets, args):
    """Runs the three experiments on {"mnist": Dataset, "fashion_mnist": Dataset}; returns
    the report as Markdown text."""
    from dgm_course import classification_results

    start = time.perf_counter()
    measured = semi_supervised_results(datasets, args)
    measured.update(bayes_results(datasets["mnist"], datasets["fashion_mnist"], args))
    measured.update(augmentation_results(datasets["mnist"], args))
    return "\n".join(["## Generative classification (notebooks/10_generative_classification.ipynb)",
                      "", classification_results.results_table(measured), "",
                      f"Seed {args.seed}; total {time.perf_counter() - start:.0f} s."])


def main(argv=None):
    args = parse(argv)
    datasets = {name: load(name, args) for name in ("mnist", "fashion_mnist")}
    print(run(datasets, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
