"""Watching and protecting a training run: a fixed-noise sample grid, loss curves that survive
a restart, TensorBoard, and checkpoints that resume to exactly the same weights.

Exact resume needs three things restored, not one: the weights and optimizer state (a Keras
`.weights.h5` file holds both), the state of every `keras.random.SeedGenerator` (the file does
not hold it: the training noise would restart from its seed), and the order of the batches
(a `tf.data` shuffle with `reshuffle_each_iteration` restarts from epoch 0's order), which
`epoch_batches` makes a function of (seed, epoch). Files are written to a temporary name and
then renamed with `os.replace`, so a kernel dying mid-save never harms the last good checkpoint.
Explained in notebooks/04_dcgan.ipynb, section "Monitor and checkpoint training".
"""

import contextlib
import io
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from dgm_course import plotting
from dgm_course._validation import describe, require_array, require_int

STATE_FILE = "checkpoint.json"  # The pointer to the last good checkpoint, replaced atomically.
HISTORY_FILE = "history.json"


def _require_directory(directory, name="directory"):
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path (str or os.PathLike); got {describe(directory)}. "
                        "Example: 'runs/dcgan'.")
    os.makedirs(directory, exist_ok=True)
    return os.fspath(directory)


def _write_json_atomically(path, content):
    partial = f"{path}.partial"
    with open(partial, "w") as file:
        json.dump(content, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)  # Atomic: readers see the old file or the new one, never half.


class SampleGrid(keras.callbacks.Callback):
    """Draws samples from the same fixed latent noise every `every` epochs and saves them.

    The noise comes from its own `seed`, drawn once; the model's training `SeedGenerator` is
    never touched, so training with or without this callback ends in the same weights.
    Images are drawn with `plotting.image_grid`, 2-D points as a scatter plot.
    Explained in notebooks/04_dcgan.ipynb, section "Watch the generator learn".

    Args:
        source: the latent size (int; samples are `model(z)` for fixed z ~ N(0, I)) or a
            function `generate(n, seed=...)` such as `gan.generate`.
        n: samples per grid.
        seed: seed of the fixed noise.
        directory: where `epoch_0001.png`, ... go; None keeps the frames in memory only.
        every: draw after every `every`-th epoch.

    Example:
        >>> grid = SampleGrid(gan.latent_dim, n=64, seed=1234, directory="runs/dcgan/samples")
        >>> gan.fit(dataset, epochs=10, callbacks=[grid])
        >>> grid.animation("runs/dcgan/samples.gif")
    """

    def __init__(self, source, *, n=64, seed=1234, directory=None, every=1):
        super().__init__()
        self.n = require_int(n, "n", minimum=1)
        self.seed = require_int(seed, "seed", minimum=0)
        self.every = require_int(every, "every", minimum=1)
        self.directory = None if directory is None else _require_directory(directory)
        if callable(source):
            self._generate, self.z = source, None
        elif isinstance(source, int) and not isinstance(source, bool) and source >= 1:
            self._generate = None
            # z ~ N(0, I), (n, latent_dim): drawn once, from a NumPy generator of its own.
            self.z = np.random.default_rng(self.seed).standard_normal((self.n, source))
            self.z = self.z.astype("float32")
        else:
            raise TypeError(f"`source` must be the latent size (an int >= 1) or a function "
                            f"generate(n, seed=...); got {describe(source)}. "
                            "Example: SampleGrid(gan.latent_dim) or SampleGrid(gan.generate).")
        self.frames = {}  # epoch (1-based) -> the grid as PNG bytes

    def samples(self):
        """Returns the current samples (n, ...) from the fixed noise, as a NumPy array."""
        if self._generate is not None:
            return np.asarray(self._generate(self.n, seed=self.seed))
        return keras.ops.convert_to_numpy(self.model(self.z, training=False))

    def figure(self, samples, title=None):
        """Returns a figure of `samples`: a scatter for 2-D points, else an image grid."""
        if samples.ndim == 2 and samples.shape[1] == 2:
            fig = Figure(figsize=(4, 4))
            ax = fig.add_subplot(1, 1, 1)
            ax.scatter(samples[:, 0], samples[:, 1], s=4)
            ax.set_aspect("equal")
            ax.set_title(title)
            return fig
        return plotting.image_grid(samples, ncols=min(8, len(samples)), title=title)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        fig = self.figure(self.samples(), title=f"epoch {epoch + 1}")
        png = io.BytesIO()
        fig.savefig(png, format="png")
        self.frames[epoch + 1] = png.getvalue()
        if self.directory is not None:
            with open(os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png"), "wb") as file:
                file.write(self.frames[epoch + 1])

    def animation(self, path, *, duration=400, max_side=360):
        """Writes a GIF of the grids (every saved epoch, in order) to `path` and returns it.

        Frames come from `directory` when there is one, so epochs before a restart count too.
        Each frame is shrunk so that its longer side is at most `max_side` pixels (a GIF of
        full-size grids is megabytes, too much for a notebook).
        """
        max_side = require_int(max_side, "max_side", minimum=16)
        from PIL import Image

        if self.directory is not None:
            names = sorted(n for n in os.listdir(self.directory) if n.startswith("epoch_"))
            images = [Image.open(os.path.join(self.directory, name)) for name in names]
        else:
            images = [Image.open(io.BytesIO(self.frames[e])) for e in sorted(self.frames)]
        if not images:
            raise ValueError("No sample grids yet: call fit() with this callback first.")
        images = [image.convert("RGB") for image in images]
        for index, image in enumerate(images):
            scale = max_side / max(image.size)
            if scale < 1:
                size = (round(image.width * scale), round(image.height * scale))
                images[index] = image.resize(size, Image.Resampling.LANCZOS)
        # 256 colours without dithering: dithered noise would make the GIF several times larger.
        images = [image.quantize(256, dither=Image.Dither.NONE) for image in images]
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
        return os.fspath(path)


class LossHistory(keras.callbacks.Callback):
    """Records the per-epoch logs like `keras.callbacks.History`, and keeps them in
    `directory/history.json` (rewritten atomically each epoch) so curves survive a restart.

    On resume from epoch k it keeps the first k epochs on file and drops any later ones
    (epochs run after the last checkpoint are run again). Explained in
    notebooks/04_dcgan.ipynb, section "Monitor and checkpoint training".

    Args:
        directory: the run's directory (the checkpoint directory is a good choice).

    Attributes:
        history: a dict name -> list of per-epoch values, e.g. {"d_loss": [...], ...}.

    Example:
        >>> losses = LossHistory("runs/dcgan")
        >>> gan.fit(..., callbacks=[checkpoint, losses])
        >>> losses.figure()
    """

    def __init__(self, directory):
        super().__init__()
        self.path = os.path.join(_require_directory(directory), HISTORY_FILE)
        self.history = {}
        self._loaded = False

    def _load(self, epochs=None):
        """Reads the first `epochs` epochs (all if None) from the file, once per object."""
        if self._loaded:
            return
        self._loaded = True
        if os.path.exists(self.path):
            with open(self.path) as file:
                saved = json.load(file)
            self.history = {key: values[:epochs] for key, values in saved.items()}

    def on_epoch_begin(self, epoch, logs=None):
        self._load(epoch)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        _write_json_atomically(self.path, self.history)

    def figure(self, keys=None, title=None):
        """Returns `plotting.loss_curves` of everything recorded so far (or of `keys`), on
        file too: after a run that was already complete, the curves of that run."""
        self._load()
        return plotting.loss_curves(self.history, keys=keys, title=title)


def tensorboard(log_dir, *, histogram_freq=0, update_freq="epoch"):
    """Returns a `keras.callbacks.TensorBoard` set up for the course: no profiler, no graph.

    Open it with `%load_ext tensorboard` then `%tensorboard --logdir runs` in a notebook.
    Explained in notebooks/04_dcgan.ipynb, section "Monitor and checkpoint training".

    Args:
        log_dir: where the event files go, e.g. "runs/dcgan/logs".
        histogram_freq: weight histograms every this many epochs; 0 (default) switches them off.
        update_freq: "epoch" (default) or "batch", or an int number of batches.

    Example:
        >>> gan.fit(dataset, epochs=10, callbacks=[tensorboard("runs/dcgan/logs")])
    """
    log_dir = _require_directory(log_dir, "log_dir")
    histogram_freq = require_int(histogram_freq, "histogram_freq", minimum=0)
    # profile_batch=0: the profiler slows the first batches and writes large traces.
    return keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=histogram_freq,
                                       write_graph=False, profile_batch=0,
                                       update_freq=update_freq)


def epoch_batches(x, *, batch_size, seed, epochs, initial_epoch=0):
    """Returns `(dataset, steps_per_epoch)`: batches of `x` whose order in each epoch is a
    function of (seed, epoch) alone, for `fit(dataset, steps_per_epoch=..., epochs=epochs,
    initial_epoch=initial_epoch)`.

    A `tf.data` shuffle with `reshuffle_each_iteration` starts again from epoch 0's order after
    a restart; here epoch e is shuffled by a stateless permutation seeded with (seed, e), so a
    resumed run sees exactly the batches the uninterrupted run saw.
    Explained in notebooks/04_dcgan.ipynb, section "Resume a run exactly".

    Args:
        x: (N, ...) float array of training examples.
        batch_size: examples per batch (the last batch of an epoch may be smaller).
        seed: seed of the shuffle.
        epochs: the total number of epochs (as passed to `fit`).
        initial_epoch: the epoch to start from (what `Checkpoint.restore` returns).

    Example:
        >>> start = checkpoint.restore(gan)
        >>> data, steps = epoch_batches(x, batch_size=256, seed=0, epochs=20, initial_epoch=start)
        >>> gan.fit(data, steps_per_epoch=steps, epochs=20, initial_epoch=start,
        ...         callbacks=[checkpoint])
    """
    x = require_array(x, "x", dtype_kinds="f", fix="Normalise the data first.")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    seed = require_int(seed, "seed", minimum=0)
    epochs = require_int(epochs, "epochs", minimum=1)
    initial_epoch = require_int(initial_epoch, "initial_epoch", minimum=0, maximum=epochs)
    examples = tf.constant(x)
    n = len(x)

    def one_epoch(epoch):
        # order = a permutation of 0..N-1 seeded with (seed, epoch), no hidden state.
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    dataset = tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch)
    dataset = dataset.map(lambda indices: tf.gather(examples, indices))  # (batch, ...)
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(n / batch_size)


def _seed_generators(model):
    """Returns every `keras.random.SeedGenerator` owned by `model` or one of its layers, in a
    fixed order (their state is not part of the `.weights.h5` file)."""
    found = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        found += [g for g in getattr(layer, "_seed_generators", []) if g not in found]
    return found


def _build_variables(model):
    """Creates the variables `load_weights` fills: the model's own and each optimizer's."""
    if not model.built:
        if hasattr(model, "latent_dim"):  # A GAN: building it means calling the generator once.
            model(keras.ops.zeros((1, model.latent_dim)))
        else:
            raise ValueError("Build the model before restoring it (call it on one batch).")
    # A GAN's players each have an optimizer; a plain model has `optimizer`.
    for optimizer_name, network_name in (("d_optimizer", "discriminator"),
                                         ("g_optimizer", "generator"), ("optimizer", None)):
        optimizer = getattr(model, optimizer_name, None)
        network = getattr(model, network_name, None) if network_name else model
        if network is None and network_name == "discriminator":  # A WGAN's is its critic.
            network = getattr(model, "critic", None)
        if optimizer is not None and not optimizer.built and network.trainable_weights:
            if optimizer_name == "optimizer" and hasattr(model, "d_optimizer"):
                continue  # The GAN's unused default optimizer stays as saved (unbuilt).
            optimizer.build(network.trainable_weights)


class Checkpoint(keras.callbacks.Callback):
    """Saves everything needed to resume exactly, after every epoch, without ever harming
    the last good checkpoint; `restore` loads it into a fresh model.

    Each save writes `epoch_0003.weights.h5` (weights and optimizer state) under a temporary
    name, renames it into place, then replaces `checkpoint.json` (epoch, file name, the state
    of every SeedGenerator) the same way, and deletes the older weights file. A kernel dying at
    any moment leaves `checkpoint.json` pointing at a complete file.
    Explained in notebooks/04_dcgan.ipynb, section "Resume a run exactly".

    Args:
        directory: the run's directory, created if needed.

    Example:
        >>> checkpoint = Checkpoint("runs/dcgan")
        >>> start = checkpoint.restore(gan)  # 0 for a new run
        >>> gan.fit(..., epochs=20, initial_epoch=start, callbacks=[checkpoint])
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = _require_directory(directory)

    def state(self):
        """Returns the last good checkpoint's record (a dict), or None if there is none."""
        path = os.path.join(self.directory, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as file:
            return json.load(file)

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch_{epoch + 1:04d}.weights.h5"
        partial = os.path.join(self.directory, f"partial_{name}")
        _build_variables(self.model)  # A GAN's own `built` flag stays False after fit().
        self.model.save_weights(partial)
        os.replace(partial, os.path.join(self.directory, name))
        previous = self.state()
        seeds = [keras.ops.convert_to_numpy(g.state).tolist() for g in _seed_generators(self.model)]
        _write_json_atomically(os.path.join(self.directory, STATE_FILE), {
            "epoch": epoch + 1, "epochs": self.params.get("epochs"), "weights": name,
            "seed_generators": seeds})
        if previous is not None and previous["weights"] != name:
            # Only now, with the new checkpoint in place, may the old one go.
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, previous["weights"]))

    def restore(self, model, *, verbose=True):
        """Loads the last good checkpoint into `model` (a fresh, compiled one) and returns the
        epoch to resume from (`fit(..., initial_epoch=...)`); 0 when there is none.

        Args:
            model: a fresh, compiled model of the same architecture.
            verbose: print "Resuming from epoch k of N from <directory>".

        Returns:
            The number of epochs already done: pass it as `initial_epoch`.

        Raises:
            ValueError: if the checkpoint does not fit the model (a different architecture).
        """
        state = self.state()
        if state is None:
            return 0
        _build_variables(model)
        model.load_weights(os.path.join(self.directory, state["weights"]))
        generators = _seed_generators(model)
        if len(generators) != len(state["seed_generators"]):
            raise ValueError(f"The checkpoint in {self.directory} holds "
                             f"{len(state['seed_generators'])} SeedGenerator states but the model "
                             f"has {len(generators)}: it was saved from a different model. Use "
                             "a new directory for a new model.")
        for generator, value in zip(generators, state["seed_generators"]):
            generator.state.assign(np.asarray(value, generator.state.dtype))
        if verbose:
            print(f"Resuming from epoch {state['epoch']} of {state['epochs']} "
                  f"from {self.directory}")
        return state["epoch"]
