"""Times the course's GAN training step in images per second: `fit()` (a compiled train_step)
fed by the tf.data pipeline `callbacks.epoch_batches`, the same `fit()` fed from batches already
in memory, and a plain eager loop calling the same train_step (tf.GradientTape, no tf.function).

If the first two rows match, the pipeline never starves the step; the third shows what
compiling the step buys. Real Fashion-MNIST is used when `--data-dir` (or DGM_DATA_DIR) is
given, else random images of the same shape (the step's cost does not depend on the pixels).

Usage:
    python benchmarks/train_step_speed.py --data-dir ../shared/data [--model dcgan|wgan]
        [--steps 50] [--warmup 5] [--batch-size 128] [--jit]
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def training_images(data_dir, batch_size, seed):
    """Returns (float32 images in [-1, 1], a sentence saying where they came from)."""
    import numpy as np

    from dgm_course import data, preprocessing

    if data_dir:
        dataset = data.load_dataset("fashion_mnist", data_dir=data_dir, download=False,
                                    fallback=False, verbose=False)
        return preprocessing.normalize(dataset.x_train), dataset.source
    # 64 full batches: no smaller last batch, so no retracing inside the timed steps.
    images = np.random.default_rng(seed).uniform(-1, 1, (64 * batch_size, 28, 28, 1))
    return images.astype("float32"), ("random images (28, 28, 1): no --data-dir or "
                                      "DGM_DATA_DIR given; the speed is the same as on real data")


def make_model(kind, *, seed, jit_compile=False):
    """Returns a compiled GAN (DCGAN networks) or WGAN-GP (DCGAN generator, critic)."""
    import keras

    from dgm_course import dcgan, gan, wgan

    keras.utils.set_random_seed(seed)  # The benchmark's only global seed: the initial weights.
    generator = dcgan.build_generator((28, 28, 1), latent_dim=64)
    if kind == "dcgan":
        model = gan.GAN(generator, dcgan.build_discriminator((28, 28, 1)), latent_dim=64,
                        seed=seed)
    else:
        model = wgan.WGAN(generator, dcgan.build_critic((28, 28, 1)), latent_dim=64, seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), jit_compile=jit_compile)
    return model


def step_clock(skip):
    """Returns a callback that measures `seconds`: from the end of batch `skip` to the end of
    `fit()`, so the start of an epoch (making the iterator, filling the prefetch buffer) is not
    counted."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == skip - 1:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return StepClock()


def fit_runner(model, dataset, skip=2):
    """Returns `run(steps)`: the seconds `steps` batches take inside one `model.fit` call,
    after `skip` untimed batches of the same call."""
    def run(steps):
        clock = step_clock(skip)
        model.fit(dataset, steps_per_epoch=skip + steps, epochs=1, shuffle=False, verbose=0,
                  callbacks=[clock])
        return clock.seconds
    return run


def eager_runner(model, batches):
    """Returns `run(steps)`: the seconds a Python loop calling `model.train_step` eagerly
    (no tf.function) takes for `steps` batches."""
    def run(steps):
        start = time.perf_counter()
        for index in range(steps):
            logs = model.train_step(batches[index % len(batches)])
        float(logs["d_loss"])  # Eager ops have run by now; this only reads the value.
        return time.perf_counter() - start
    return run


def runners(args, images):
    """Returns [(label, run)], one for each way of running the step, each with a fresh model."""
    import tensorflow as tf

    from dgm_course import callbacks

    total = args.warmup + (args.steps + 2) * args.repeats
    epochs = -(-total * args.batch_size // len(images)) + 1  # Enough epochs for every step.
    pipeline, _ = callbacks.epoch_batches(images, batch_size=args.batch_size, seed=args.seed,
                                          epochs=epochs)
    # The first min(total, 32) batches, materialised once, repeated: no gather, no shuffle.
    batches = [tf.constant(images[i * args.batch_size:(i + 1) * args.batch_size])
               for i in range(min(total, 32))]
    in_memory = tf.data.Dataset.from_tensor_slices(tf.stack(batches)).cache().repeat()
    found = [("fit(), epoch_batches tf.data pipeline",
              fit_runner(make_model(args.model, seed=args.seed), pipeline)),
             ("fit(), batches already in memory",
              fit_runner(make_model(args.model, seed=args.seed), in_memory))]
    if args.jit:
        found.append(("fit(), epoch_batches, jit_compile=True (XLA)",
                      fit_runner(make_model(args.model, seed=args.seed, jit_compile=True),
                                 pipeline)))
    found.append(("eager loop: train_step, GradientTape, no tf.function",
                  eager_runner(make_model(args.model, seed=args.seed), batches)))
    return found


def rates(args, images):
    """Yields (label, best, median images/s) per row. Rows take turns, `repeats` rounds of
    `steps` steps after `warmup` untimed ones (the first traces the step): a machine shared
    with other work slows every row alike, and the best round is the least disturbed."""
    import numpy as np

    table = runners(args, images)
    for _, run in table:
        run(args.warmup)
    seconds = [[run(args.steps) for _, run in table] for _ in range(args.repeats)]
    for (label, _), times in zip(table, np.transpose(seconds)):
        speeds = args.steps * args.batch_size / times
        yield label, speeds.max(), float(np.median(speeds))


def machine_facts():
    """Returns one line about the machine and the library versions."""
    import keras
    import tensorflow as tf

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({usable} usable), {gpus} GPUs"
            f"{load}; Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("DGM_DATA_DIR"))
    parser.add_argument("--model", choices=("dcgan", "wgan"), default="dcgan")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per row and round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit", action="store_true", help="add a row with jit_compile=True")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps, args.warmup, args.repeats) < 1:
        parser.error("--batch-size, --steps, --warmup and --repeats must be at least 1")
    print(machine_facts(), flush=True)
    images, source = training_images(args.data_dir, args.batch_size, args.seed)
    print(f"data: {source}")
    print(f"model: {args.model}, batch size {args.batch_size}, {args.warmup} warm-up steps, "
          f"then {args.repeats} rounds of {args.steps} timed steps per row", flush=True)
    print(f"{'how the train step runs':52} {'images/s best':>14} {'median':>8}")
    for label, best, median in rates(args, images):
        print(f"{label:52} {best:14,.0f} {median:8,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
