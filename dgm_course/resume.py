"""Runs that survive a Colab disconnect: checkpoints on Google Drive when it is mounted, and a
`fit` that picks up from the newest checkpoint by itself, ending in exactly the weights of a run
that was never interrupted.

A free Colab session ends after a while idle, or after some hours; its disk goes with it. Drive,
once mounted, outlives the session. `resumable_fit` combines `callbacks.Checkpoint` (weights,
optimizer states, SeedGenerator states) with `callbacks.epoch_batches` (a batch order that is a
function of (seed, epoch)), so re-running the same cell after a disconnect continues the run.
Explained in notebooks/09_training_at_scale.ipynb, section "Survive a Colab disconnect".
"""

import json
import os
import warnings
import zlib

import keras
import numpy as np
import tensorflow as tf

from dgm_course import environment
from dgm_course._validation import describe, require_array, require_int, require_labels
from dgm_course.callbacks import (
    Checkpoint,
    LossHistory,
    _write_json_atomically,
    epoch_batches,
)

DRIVE_ROOT = "/content/drive"  # Where Colab mounts Google Drive.
DRIVE_FOLDER = "/content/drive/MyDrive/dgm-course"  # The course's folder on the learner's Drive.
SETTINGS_FILE = "resumable_fit.json"  # The run's data (size, checksum), batch size and seed.
_MAX_EXAMPLES = 2**24  # Example indices travel as float32, exact up to 2**24.


def drive_mounted(root=DRIVE_ROOT):
    """Returns True if Google Drive is mounted at `root` (its "MyDrive" folder is there).

    Explained in notebooks/09_training_at_scale.ipynb, section "Survive a Colab disconnect".

    Args:
        root: where Drive is mounted; Colab's default.

    Example:
        >>> drive_mounted()  # False outside Colab
        False
    """
    return os.path.isdir(os.path.join(os.fspath(root), "MyDrive"))


def mount_drive():
    """Mounts Google Drive on Colab (Colab asks for permission) and returns the course's folder
    on it; elsewhere does nothing, says so in one line, and returns None.

    Explained in notebooks/09_training_at_scale.ipynb, section "Survive a Colab disconnect".

    Returns:
        "/content/drive/MyDrive/dgm-course" on Colab, None elsewhere.

    Example:
        >>> mount_drive()  # On a laptop:
        Not on Colab: checkpoints stay on the local disk.
    """
    if not environment.on_colab():
        print("Not on Colab: checkpoints stay on the local disk.")
        return None
    try:
        from google.colab import drive  # Exists on Colab only.
    except ImportError:
        print("google.colab is not importable here: checkpoints stay on the local disk.")
        return None
    if not drive_mounted():
        drive.mount(DRIVE_ROOT)
    return DRIVE_FOLDER


def _require_run_name(name):
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a folder name (str); got {describe(name)}. "
                        "Example: run_directory('dcgan').")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if name.strip() in ("", ".", "..") or any(s in name for s in separators) or "\0" in name:
        raise ValueError(f"`name` must be a plain folder name, without path separators; got "
                         f"{name!r}. Example: run_directory('dcgan'); choose where runs go "
                         "with `local_root=` or `drive_root=`.")
    return name


def run_directory(name, *, local_root="runs", drive_root=DRIVE_FOLDER):
    """Creates and returns the directory of the run `name`: on Google Drive when it is mounted
    (a disconnect does not lose it), else on the local disk; prints where checkpoints go.

    Explained in notebooks/09_training_at_scale.ipynb, section "Survive a Colab disconnect".

    Args:
        name: the run's folder name, e.g. "dcgan" (no path separators).
        local_root: the parent folder when Drive is not mounted.
        drive_root: the parent folder when Drive is mounted.

    Returns:
        The directory's path (a str), created if needed.

    Raises:
        TypeError: if `name` is not a str.
        ValueError: if `name` is empty, "." or "..", or holds a path separator.

    Example:
        >>> directory = run_directory("dcgan")
        Checkpoints go to runs/dcgan on the local disk.
    """
    name = _require_run_name(name)
    on_drive = drive_mounted()
    directory = os.path.join(os.fspath(drive_root if on_drive else local_root), name)
    os.makedirs(directory, exist_ok=True)
    if on_drive:
        print(f"Checkpoints go to {directory} on Google Drive: they survive a disconnect.")
    elif environment.on_colab():
        print(f"Checkpoints go to {directory} on the Colab disk, which a disconnect erases: "
              "call resume.mount_drive() first to keep them on Google Drive.")
    else:
        print(f"Checkpoints go to {directory} on the local disk.")
    return directory


def _require_compiled_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a compiled keras.Model (e.g. a gan.GAN or vae.VAE); "
                        f"got {describe(model)}.")
    if not model.compiled:
        raise ValueError(f"`model` ({model.name}) is not compiled: call model.compile(...) "
                         "before resumable_fit, as before fit.")
    return model


def _batches(x, y, *, batch_size, seed, epochs, initial_epoch):
    """`epoch_batches(x, ...)`, or with labels the same (seed, epoch) order over (x, y) pairs."""
    if y is None:
        return epoch_batches(x, batch_size=batch_size, seed=seed, epochs=epochs,
                             initial_epoch=initial_epoch)
    if len(x) > _MAX_EXAMPLES:
        raise ValueError(f"resumable_fit takes at most {_MAX_EXAMPLES} labelled examples; got "
                         f"{len(x)}. Train on a subset, or write the loop with epoch_batches.")
    # epoch_batches orders the example indices 0..N-1; both arrays are gathered in that order.
    indices = np.arange(len(x), dtype="float32")[:, None]  # (N, 1)
    order, steps = epoch_batches(indices, batch_size=batch_size, seed=seed, epochs=epochs,
                                 initial_epoch=initial_epoch)
    images, labels = tf.constant(x), tf.constant(y)

    def gather(batch_indices):  # (batch, 1) -> ((batch, ...), (batch,))
        batch_indices = tf.cast(batch_indices[:, 0], tf.int64)
        return tf.gather(images, batch_indices), tf.gather(labels, batch_indices)

    return order.map(gather).prefetch(tf.data.AUTOTUNE), steps


def _build(model, x, y):
    """Creates a subclassed model's variables (a VAE's are made by its first call) so that a
    checkpoint can be loaded into it and saved from it; a GAN is built by its networks."""
    if model.built:
        return
    first = keras.ops.convert_to_tensor(x[:1])
    if y is not None and hasattr(model, "num_classes"):  # A conditional model: (images, labels).
        model((first, keras.ops.convert_to_tensor(y[:1])))
    else:
        model(first)


def _check_settings(directory, settings, *, resuming):
    """Records the run's settings; a call that resumes it must pass the same ones."""
    path = os.path.join(directory, SETTINGS_FILE)
    if resuming and os.path.exists(path):
        with open(path) as file:
            saved = json.load(file)
        changed = [key for key in settings if saved.get(key) != settings[key]]
        if changed:
            before = ", ".join(f"{key}={saved.get(key)}" for key in changed)
            now = ", ".join(f"{key}={settings[key]}" for key in changed)
            raise ValueError(f"The run in {directory} was started with {before}, but this call "
                             f"passes {now}: it would not continue the same run. Pass the same "
                             "data, batch_size and seed, or use another directory.")
    _write_json_atomically(path, settings)


def _keras_reason(error):
    """The informative line of a Keras loading error (its first line only says how many)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    reason = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _restore(checkpoint, model):
    """`checkpoint.restore(model)`, with one clear error when the checkpoint is another model's
    (Keras raises a long list, or only warns when just an optimizer does not fit)."""
    fix = (f"It was saved from a different model: give this run its own directory "
           f"(resume.run_directory('another_name')), or delete {checkpoint.directory} to start "
           "over.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = checkpoint.restore(model, verbose=False)
        except ValueError as error:
            if "SeedGenerator" in str(error):  # Checkpoint's own message says it all.
                raise
            raise ValueError(f"The checkpoint in {checkpoint.directory} does not fit this model "
                             f"({_keras_reason(error)}). {fix}") from None
    skipped = [str(w.message).strip() for w in caught if "Skipping" in str(w.message)]
    for w in caught:  # Any other warning is passed on as it was.
        if "Skipping" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if skipped:
        raise ValueError(f"The checkpoint in {checkpoint.directory} does not fit this model "
                         f"({skipped[0]}). {fix}")
    return start


def _say(verbose, text):
    if verbose != 0:
        print(text)


def _check_arguments(model, x, y, callbacks):
    """Returns (x, y) checked; raises for a non-model, an uncompiled or unlabelled one."""
    _require_compiled_model(model)
    x = require_array(x, "x", dtype_kinds="f", fix="Normalise the data first.")
    if y is not None:
        y = require_labels(y, len(x), fix="pass y_train with x_train")
    elif hasattr(model, "num_classes"):
        raise ValueError(f"{model.name} is a conditional model: it trains on (images, labels). "
                         "Pass the labels too: resumable_fit(model, x_train, y_train, ...).")
    if any(isinstance(callback, Checkpoint) for callback in callbacks):
        raise ValueError("resumable_fit adds its own callbacks.Checkpoint(directory); remove the "
                         "Checkpoint from `callbacks`.")
    return x, y


def resumable_fit(model, x, y=None, *, epochs, directory, batch_size, seed, callbacks=(),
                  verbose="auto"):
    """Trains `model` for `epochs` epochs with a checkpoint in `directory` after each one,
    continuing from the newest checkpoint there if there is one: re-running the same call after
    a disconnect or a kernel restart ends in exactly the weights of an uninterrupted run.

    A `callbacks.Checkpoint(directory)` and a `callbacks.LossHistory(directory)` are added
    (after `callbacks`, so a checkpoint marks an epoch whose other callbacks have all run); the
    batches come from `callbacks.epoch_batches`. A run already complete is loaded into `model`
    and not trained further. The first call records the data (its size and CRC-32 checksum),
    `batch_size` and `seed`; resuming with others raises instead of silently changing the run.
    Explained in notebooks/09_training_at_scale.ipynb, section "Survive a Colab disconnect".

    Args:
        model: a fresh, compiled model built the same way each time (gan.GAN, wgan.WGAN,
            vae.VAE, a conditional model, or any compiled keras.Model).
        x: (N, ...) float array of training examples (normalised).
        y: None, or (N,) integer labels: the batches are then (images, labels) pairs, as the
            conditional models need (a classifier takes them as targets).
        epochs: the run's total number of epochs; may grow between calls to extend a run.
        directory: the run's directory, e.g. `run_directory("dcgan")`.
        batch_size: examples per batch.
        seed: seed of the batch order.
        callbacks: more Keras callbacks (not a Checkpoint: one is added).
        verbose: passed to `fit`; 0 also silences the lines this function prints.

    Returns:
        The `History` of the epochs trained by this call, or None if none were left.

    Raises:
        TypeError: if `model` is not a keras.Model, or `x`, `y` have the wrong types.
        ValueError: if `model` is not compiled, the checkpoint in `directory` is another
            model's, the data, batch size or seed differ from the run's first call, or a
            conditional model gets no labels.

    Example:
        >>> directory = resume.run_directory("dcgan")
        >>> history = resume.resumable_fit(dcgan_model, x_train, epochs=20, directory=directory,
        ...                                batch_size=128, seed=0)
    """
    x, y = _check_arguments(model, x, y, callbacks)
    epochs = require_int(epochs, "epochs", minimum=1)
    settings = {"examples": len(x), "data_crc32": zlib.crc32(np.ascontiguousarray(x)),
                "batch_size": require_int(batch_size, "batch_size", minimum=1),
                "seed": require_int(seed, "seed", minimum=0)}
    checkpoint = Checkpoint(directory)
    _build(model, x, y)
    start = _restore(checkpoint, model)
    _check_settings(checkpoint.directory, settings, resuming=start > 0)
    if start >= epochs:
        _say(verbose, f"The run in {checkpoint.directory} is complete ({start} epochs, {epochs} "
             "asked for): its weights are loaded, nothing is left to train.")
        return None
    _say(verbose, f"Resuming the run in {checkpoint.directory} after epoch {start}: epochs "
         f"{start + 1} to {epochs}." if start else
         f"A new run in {checkpoint.directory}: epochs 1 to {epochs}.")
    data, steps = _batches(x, y, batch_size=batch_size, seed=seed, epochs=epochs,
                           initial_epoch=start)
    extra = [] if any(isinstance(c, LossHistory) for c in callbacks) else [LossHistory(directory)]
    return model.fit(data, steps_per_epoch=steps, epochs=epochs, initial_epoch=start,
                     callbacks=[*callbacks, *extra, checkpoint], verbose=verbose, shuffle=False)
