"""Tests of dgm_course.callbacks: fixed-noise grids, persistent loss history, TensorBoard,
and checkpoints that resume to exactly the weights of an uninterrupted run."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from dgm_course import callbacks, gan, toy
from dgm_course.environment import set_seed

EPOCHS, BATCH = 4, 32


def ring_points(n=96):
    return toy.ring().sample(n, seed=0)[0].astype("float32")


def make_gan(seed=3):
    set_seed(0)  # Same initial weights for every model built after it.
    model = gan.GAN(gan.toy_generator(latent_dim=3, hidden=16),
                    gan.toy_discriminator(hidden=16), latent_dim=3, seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return model


def all_weights(model):
    return [w.numpy() for w in model.generator.weights + model.discriminator.weights]


def fit(model, *, initial_epoch=0, extra=()):
    data, steps = callbacks.epoch_batches(ring_points(), batch_size=BATCH, seed=7, epochs=EPOCHS,
                                          initial_epoch=initial_epoch)
    return model.fit(data, steps_per_epoch=steps, epochs=EPOCHS, initial_epoch=initial_epoch,
              shuffle=False, verbose=0, callbacks=list(extra))


@pytest.fixture(scope="module")
def uninterrupted():
    """The weights and loss history of a run of EPOCHS epochs that nothing interrupts."""
    model = make_gan()
    history = fit(model)
    return {"weights": all_weights(model), "history": history.history,
            "seed_state": model.seed_generator.state.numpy()}


class Crash(keras.callbacks.Callback):
    """Raises in the middle of epoch `epoch` (0-based), like a kernel dying."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt("simulated crash")


# Exact resume.


@pytest.mark.slow
def test_killed_and_resumed_run_reaches_the_same_weights(uninterrupted, tmp_path, capsys):
    checkpoint = callbacks.Checkpoint(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(make_gan(), extra=[checkpoint, Crash(epoch=2, batch=1)])
    assert checkpoint.state()["epoch"] == 2
    # A kernel dying mid-save leaves a partial file behind; resume ignores it.
    (tmp_path / "partial_epoch_0003.weights.h5").write_bytes(b"half a file")
    (tmp_path / "checkpoint.json.partial").write_text('{"epoch": 9')
    resumed = make_gan()  # A fresh object, as after a restart.
    start = callbacks.Checkpoint(tmp_path).restore(resumed)
    assert start == 2
    assert f"Resuming from epoch 2 of {EPOCHS} from {tmp_path}" in capsys.readouterr().out
    fit(resumed, initial_epoch=start, extra=[callbacks.Checkpoint(tmp_path)])
    for a, b in zip(uninterrupted["weights"], all_weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(uninterrupted["seed_state"], resumed.seed_generator.state.numpy())
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("epoch_")) == [
        "epoch_0004.weights.h5"]  # Older checkpoints are removed once a newer one is in place.


@pytest.mark.slow
def test_weights_file_alone_is_not_enough_to_resume(uninterrupted, tmp_path):
    """Why Checkpoint records SeedGenerator states itself: `.weights.h5` (what
    keras.callbacks.BackupAndRestore saves) holds weights and optimizer state but not the
    training noise's SeedGenerator, so a run resumed from it alone draws other noise."""
    checkpoint = callbacks.Checkpoint(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(make_gan(), extra=[checkpoint, Crash(epoch=2, batch=0)])
    weights_only = make_gan()
    callbacks._build_variables(weights_only)
    weights_only.load_weights(tmp_path / checkpoint.state()["weights"])
    assert weights_only.seed_generator.state.numpy()[1] == 0  # Back at the seed's start.
    fit(weights_only, initial_epoch=2)
    assert not all(np.array_equal(a, b)
                   for a, b in zip(uninterrupted["weights"], all_weights(weights_only), strict=True))


def test_epoch_batches_order_depends_only_on_seed_and_epoch():
    x = np.arange(10, dtype="float32")[:, None]
    data, steps = callbacks.epoch_batches(x, batch_size=4, seed=1, epochs=3)
    batches = [b.numpy()[:, 0] for b in data]
    assert steps == 3 and len(batches) == 9 and [len(b) for b in batches[:3]] == [4, 4, 2]
    epochs = [np.concatenate(batches[i:i + 3]) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(10)) for e in epochs)  # Each epoch: a permutation.
    assert not np.array_equal(epochs[0], epochs[1])  # Reshuffled every epoch.
    later, _ = callbacks.epoch_batches(x, batch_size=4, seed=1, epochs=3, initial_epoch=1)
    np.testing.assert_array_equal(np.concatenate([b.numpy()[:, 0] for b in later]),
                                  np.concatenate(epochs[1:]))
    with pytest.raises(ValueError, match="at most 3"):
        callbacks.epoch_batches(x, batch_size=4, seed=1, epochs=3, initial_epoch=4)
    with pytest.raises(TypeError, match="Normalise"):
        callbacks.epoch_batches(x.astype("uint8"), batch_size=4, seed=1, epochs=3)


def test_restore_without_checkpoint_starts_at_zero(tmp_path):
    assert callbacks.Checkpoint(tmp_path / "new").restore(make_gan()) == 0
    with pytest.raises(TypeError, match="path"):
        callbacks.Checkpoint(3)


# Sample grids.


@pytest.mark.slow
def test_sample_grid_never_changes_training(uninterrupted, tmp_path):
    watched = make_gan()
    grid = callbacks.SampleGrid(3, n=16, seed=5, directory=tmp_path, every=2)
    fit(watched, extra=[grid])
    for a, b in zip(uninterrupted["weights"], all_weights(watched), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["epoch_0002.png", "epoch_0004.png"]
    gif = grid.animation(tmp_path / "samples.gif")
    with Image.open(gif) as image:
        assert image.n_frames == 2 and max(image.size) <= 360
    with Image.open(grid.animation(tmp_path / "small.gif", max_side=100)) as image:
        assert max(image.size) == 100


@pytest.mark.slow
def test_sample_grid_uses_fixed_noise_and_generate():
    model = make_gan()
    grid = callbacks.SampleGrid(3, n=8, seed=5)
    grid.set_model(model)
    np.testing.assert_array_equal(grid.samples(), grid.samples())
    by_generate = callbacks.SampleGrid(model.generate, n=8, seed=5)
    np.testing.assert_array_equal(by_generate.samples(), model.generate(8, seed=5))
    fit(model, extra=[by_generate])
    assert sorted(by_generate.frames) == [1, 2, 3, 4]
    images = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1))
    assert len(grid.figure(images).axes) == 4  # Images go to plotting.image_grid.
    with pytest.raises(TypeError, match="latent size"):
        callbacks.SampleGrid("3")
    with pytest.raises(ValueError, match="No sample grids"):
        callbacks.SampleGrid(3).animation("never.gif")


# Loss history and TensorBoard.


@pytest.mark.slow
def test_loss_history_survives_a_restart(uninterrupted, tmp_path):
    first = callbacks.LossHistory(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(make_gan(), extra=[callbacks.Checkpoint(tmp_path), first, Crash(epoch=2, batch=0)])
    assert len(json.loads((tmp_path / "history.json").read_text())["d_loss"]) == 2
    resumed, second = make_gan(), callbacks.LossHistory(tmp_path)
    start = callbacks.Checkpoint(tmp_path).restore(resumed, verbose=False)
    fit(resumed, initial_epoch=start, extra=[second])
    assert set(second.history) == {"d_loss", "g_loss"}
    np.testing.assert_array_equal(second.history["d_loss"], uninterrupted["history"]["d_loss"])
    assert len(second.figure().axes[0].lines) == 2
    reread = callbacks.LossHistory(tmp_path)  # A finished run, opened again: nothing to fit.
    reread.figure()
    np.testing.assert_array_equal(reread.history["d_loss"], uninterrupted["history"]["d_loss"])


def test_tensorboard_is_configured_for_the_course(tmp_path):
    board = callbacks.tensorboard(tmp_path / "logs")
    assert isinstance(board, keras.callbacks.TensorBoard)
    assert board.histogram_freq == 0 and not board.write_graph
    with pytest.raises(ValueError, match="at least 0"):
        callbacks.tensorboard(tmp_path, histogram_freq=-1)
