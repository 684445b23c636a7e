"""Measures how well a likelihood model refuses images of no known kind, in both directions
(a model of MNIST shown Fashion-MNIST items, and a model of Fashion-MNIST shown MNIST digits)
and against simple outliers, with the raw likelihood and with Ren et al.'s (2019) likelihood
ratio against a background model and with Serra et al.'s (2020) input complexity correction.

The models: `vae.VAE` with `conv_vae`'s encoder and Bernoulli decoder, trained on dynamically
binarised training images (`likelihood.binarized_dataset`), so that log p(x) is the log of a
normalised density over binary images. The background model: the same network trained on the
same images with a share `--perturb-rate` of the pixels replaced by fair coins. Every setting
is fixed in advance (the defaults below); no test image is seen before the scoring.

The scores: log p(x) estimated with the importance-weighted bound, k = `--k` samples
(`conv_vae.estimate_log_likelihood`), on one fixed binarisation of each test set (seed 1, as
notebook 07). An image is refused when its score is low; AUROC 0.5 is chance, 1 perfect, and
below 0.5 means the unknown images score *higher* than the known ones. The third score adds
L(x), the PNG length in bits of the binarised image, to log2 p(x) (`likelihood.complexity_*`).

Outliers, built from the known test images (as many as `--outliers`): constant images (one grey
level each, drawn uniformly), uniform noise, and inverted images (255 - x).

Usage:
    python benchmarks/rejection.py --data-dir ../shared/data [--seeds 0,1,2] [--epochs 5]
        [--width 16] [--latent-dim 16] [--k 10] [--perturb-rate 0.2] [--save]
    (about 4 minutes per seed and direction on 2 CPU cores; --quick: tiny, a smoke test whose
    numbers mean nothing; --save writes benchmarks/results/rejection.md)
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks.budget import machine

DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
TEST_BINARIZATION_SEED = 1  # notebook 07's fixed binarised test set
QUICK = {"epochs": 1, "width": 4, "k": 2, "train_images": 512, "test_images": 200,
         "outliers": 100, "seeds": "0"}


def parse(argv):
    """The command line's options (--quick overrides the sizes with QUICK's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with MNIST and Fashion-MNIST")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each VAE")
    parser.add_argument("--width", type=int, default=16, help="channels of the first convolution")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--k", type=int, default=10, help="importance samples per image")
    parser.add_argument("--perturb-rate", type=float, default=0.2,
                        help="share of pixels the background model sees replaced by coins")
    parser.add_argument("--outliers", type=int, default=2000, help="images per outlier set")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/rejection.md")
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny and fast")
    args = parser.parse_args(argv)
    args.train_images = args.test_images = None
    if args.quick:
        vars(args).update(QUICK)
    return args


def load(args):
    """{name: (x_train, x_test)} of uint8 images for both datasets."""
    from dgm_course import data

    arrays = {}
    for name in DATASETS:
        dataset = data.load_dataset(name, data_dir=args.data_dir, fallback=False, verbose=False)
        arrays[name] = (dataset.x_train[:args.train_images], dataset.x_test[:args.test_images])
    return arrays


def outlier_sets(x_known_test, count, seed):
    """{name: uint8 images}: constant images, uniform noise, inverted known test images."""
    rng = np.random.default_rng(seed)
    shape = (count,) + x_known_test.shape[1:]
    levels = rng.integers(0, 256, (count,) + (1,) * (len(shape) - 1))
    return {"constant images": np.broadcast_to(levels, shape).astype(np.uint8),
            "uniform noise": rng.integers(0, 256, shape).astype(np.uint8),
            "inverted images": (255 - x_known_test[:count]).astype(np.uint8)}


def train_vae(x_train, args, seed, perturb_rate=None):
    """A Bernoulli VAE trained on dynamically binarised (and, for the background, perturbed)
    images."""
    import keras

    from dgm_course import conv_vae, likelihood, vae
    from dgm_course.environment import set_seed

    set_seed(seed)
    model = vae.VAE(conv_vae.build_encoder(latent_dim=args.latent_dim, width=args.width),
                    conv_vae.build_decoder(args.latent_dim, likelihood="bernoulli",
                                           width=args.width),
                    likelihood="bernoulli", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    dataset = likelihood.binarized_dataset(x_train, batch_size=args.batch_size, seed=seed,
                                           perturb_rate=perturb_rate)
    model.fit(dataset, epochs=args.epochs, verbose=0, shuffle=False)
    return model


def direction(arrays, known, unknown, args, seed):
    """AUROCs of one known dataset against the other and the outliers, for one seed."""
    from dgm_course import conv_vae, likelihood
    from dgm_course import generative_classifier as gc

    start = time.perf_counter()
    x_train, x_test = arrays[known]
    model = train_vae(x_train, args, seed)
    background = train_vae(x_train, args, seed, perturb_rate=args.perturb_rate)
    sets = {DATASETS[unknown]: arrays[unknown][1],
            **outlier_sets(x_test, args.outliers, seed=1000 + seed)}
    scores = {}
    for name, images in {"known": x_test, **sets}.items():
        binary = conv_vae.binarize(images, seed=TEST_BINARIZATION_SEED)
        raw, back = (conv_vae.estimate_log_likelihood(m, binary, k=args.k, seed=seed,
                                                      batch_size=100)
                     for m in (model, background))
        scores[name] = (raw, likelihood.likelihood_ratio(raw, back),
                        likelihood.complexity_corrected(raw, likelihood.complexity_bits(binary)))
    rows = {}
    for name in sets:
        rows[name] = tuple(gc.rejection_curve(scores["known"][i], scores[name][i]).auroc
                           for i in range(3))
    nll = -float(np.mean(scores["known"][0]))
    return rows, nll, time.perf_counter() - start


def mean_std(values):
    """'mean ± std' over seeds (std with n - 1; '-' for one seed)."""
    values = np.asarray(values, np.float64)
    spread = f"{values.std(ddof=1):.3f}" if len(values) > 1 else "-"
    return f"{values.mean():.3f} ± {spread}"


def report(results, args):
    """The Markdown report of {(known, unknown): [(rows, nll, seconds) per seed]}."""
    seeds = args.seeds
    lines = ["# Refusing unknown images: raw likelihood against the likelihood ratio", "",
             (f"`python benchmarks/rejection.py --seeds {seeds} --epochs {args.epochs} --width "
             f"{args.width} --k {args.k} --perturb-rate {args.perturb_rate}"
             f"{' --quick' if args.quick else ''}` on {datetime.date.today().isoformat()}, "
             f"{machine()}. AUROC, "
             f"mean ± standard deviation over the seeds {seeds}; below 0.5, the unknown images "
             "score higher than the known ones."), "",
             ("| model of | unknown images | AUROC, log p(x) | AUROC, likelihood ratio "
             "| AUROC, log2 p(x) + L(x) |"), "|---|---|---:|---:|---:|"]
    for (known, _), runs in results.items():
        for name in runs[0][0]:
            cells = [mean_std([run[0][name][i] for run in runs]) for i in range(3)]
            lines.append(f"| {DATASETS[known]} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for (known, _), runs in results.items():
        lines.append(f"- {DATASETS[known]}: test NLL {mean_std([run[1] for run in runs])} nats "
                     f"(k = {args.k}); {np.mean([run[2] for run in runs]):.0f} s per seed "
                     "(both VAEs trained and every set scored).")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse(argv)
    arrays = load(args)
    results = {}
    for known, unknown in (("mnist", "fashion_mnist"), ("fashion_mnist", "mnist")):
        results[(known, unknown)] = []
        for seed in (int(s) for s in args.seeds.split(",")):
            results[(known, unknown)].append(direction(arrays, known, unknown, args, seed))
            print(f"{known} seed {seed}: {results[(known, unknown)][-1]}", flush=True)
    text = report(results, args)
    print(text)
    if args.save:
        path = ROOT / "benchmarks" / "results" / "rejection.md"
        path.write_text(text, encoding="utf-8")
        print(f"saved to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
