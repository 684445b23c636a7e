"""Tests of dgm_course.resume: run directories on Google Drive (simulated by a temporary folder)
or on the local disk, and `resumable_fit`, which continues a run cut by a disconnect to exactly
the weights of a run that was never interrupted, for each kind of course model."""

import json
import os
import shutil
import sys
import types

import keras
import numpy as np
import pytest

from dgm_course import (
    callbacks,
    conditional_vae,
    dcgan,
    environment,
    gan,
    resume,
    toy,
    vae,
    wgan,
)
from dgm_course.environment import set_seed

EPOCHS, BATCH, SEED = 4, 32, 7
KINDS = ("gan", "wgan", "vae", "conditional_vae")


def adam():
    return keras.optimizers.Adam(1e-3)


def make_model(kind, *, hidden=16, d_optimizer=adam):
    """A fresh compiled model, built exactly the same way each time (as after a restart)."""
    set_seed(0)
    if kind == "gan":
        model = gan.GAN(gan.toy_generator(latent_dim=3, hidden=hidden),
                        gan.toy_discriminator(hidden=hidden), latent_dim=3, seed=3)
    elif kind == "wgan":
        model = wgan.WGAN(gan.toy_generator(latent_dim=3, hidden=hidden),
                          gan.toy_discriminator(hidden=hidden), latent_dim=3, n_critic=2, seed=3)
    elif kind == "dcgan":
        model = gan.GAN(dcgan.build_generator(latent_dim=8, width=8),
                        dcgan.build_discriminator(width=8), latent_dim=8, seed=3)
    elif kind == "vae":
        model = vae.VAE(vae.toy_encoder(hidden=hidden), vae.toy_decoder(hidden=hidden), seed=3)
    else:
        model = conditional_vae.ConditionalVAE(
            conditional_vae.build_conditional_encoder(latent_dim=4, width=8),
            conditional_vae.build_conditional_decoder(latent_dim=4, width=8),
            num_classes=10, seed=3)
    if kind in ("vae", "conditional_vae"):
        model.compile(optimizer=adam())
    else:
        model.compile(d_optimizer=d_optimizer(), g_optimizer=adam())
    return model


def training_data(kind):
    """(x, y): 96 ring points for the toy models, 40 random images (with labels) otherwise."""
    if kind in ("gan", "wgan", "vae"):
        return toy.ring().sample(96, seed=0)[0].astype("float32"), None
    images = np.random.default_rng(0).uniform(-1, 1, (40, 28, 28, 1)).astype("float32")
    if kind == "dcgan":
        return images, None
    return (images + 1) / 2, np.arange(40) % 10  # Bernoulli pixels in [0, 1], with labels.


def fit(model, kind, directory, *, epochs=EPOCHS, **kwargs):
    x, y = training_data(kind)
    return resume.resumable_fit(model, x, y, epochs=epochs, directory=directory,
                                batch_size=BATCH, seed=SEED, verbose=0, **kwargs)


def state(model):
    """Every weight and every SeedGenerator state of `model`, as NumPy arrays."""
    return ([w.numpy() for w in model.weights]
            + [g.state.numpy() for g in callbacks._seed_generators(model)])


def assert_same_state(a, b):
    for x, y in zip(state(a), state(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A function kind -> (model, its run directory) after EPOCHS epochs straight through."""
    runs = {}

    def run(kind):
        if kind not in runs:
            directory = tmp_path_factory.mktemp(f"straight_{kind}")
            model = make_model(kind)
            fit(model, kind, directory)
            runs[kind] = model, directory
        return runs[kind]

    return run


def disconnect(epoch, batch=1):
    """A callback that raises at batch `batch` of epoch `epoch` (0-based), like a Colab session
    ending in the middle of an epoch."""
    current = {}

    def at_batch(index, logs=None):
        if (current["epoch"], index) == (epoch, batch):
            raise KeyboardInterrupt("simulated disconnect")

    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda index, logs=None: current.update(epoch=index),
        on_train_batch_begin=at_batch)


@pytest.fixture()
def drive(tmp_path, monkeypatch):
    """A mounted "Google Drive": a temporary folder, with `drive_mounted()` True."""
    monkeypatch.setattr(resume, "drive_mounted", lambda root=resume.DRIVE_ROOT: True)
    return tmp_path / "drive" / "MyDrive" / "dgm-course"


# Exact resume after a disconnect.


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_disconnected_run_resumes_to_the_uninterrupted_weights(kind, uninterrupted, drive,
                                                                 capsys):
    directory = resume.run_directory(f"{kind}_run", drive_root=drive)
    assert directory == os.path.join(drive, f"{kind}_run")
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(kind), kind, directory, callbacks=[disconnect(epoch=2)])
    assert callbacks.Checkpoint(directory).state()["epoch"] == 2
    resumed = make_model(kind)  # A fresh object, as in a new Colab session.
    capsys.readouterr()
    x, y = training_data(kind)
    history = resume.resumable_fit(resumed, x, y, epochs=EPOCHS, directory=directory,
                                   batch_size=BATCH, seed=SEED, verbose="auto")
    printed = capsys.readouterr().out
    assert f"Resuming the run in {directory} after epoch 2: epochs 3 to 4." in printed
    assert history.epoch == [2, 3]
    straight, straight_directory = uninterrupted(kind)
    assert_same_state(straight, resumed)
    # The loss curves on file cover all four epochs, equal to the uninterrupted run's.
    with open(os.path.join(directory, callbacks.HISTORY_FILE)) as file:
        curves = json.load(file)
    with open(os.path.join(straight_directory, callbacks.HISTORY_FILE)) as file:
        assert curves == json.load(file)
    assert all(len(values) == EPOCHS for values in curves.values())


@pytest.fixture(scope="module")
def half_run_original(tmp_path_factory):
    """The directory of a GAN run called with epochs=2 (of the 4 of the uninterrupted run)."""
    directory = tmp_path_factory.mktemp("half_run")
    assert len(fit(make_model("gan"), "gan", directory, epochs=2).epoch) == 2
    return directory


@pytest.fixture()
def half_run(half_run_original, tmp_path):
    """A copy of `half_run_original` that a test may change."""
    return shutil.copytree(half_run_original, tmp_path / "half_run")


@pytest.mark.slow
def test_a_run_can_be_extended_and_a_complete_run_is_loaded(uninterrupted, half_run, capsys):
    extended = make_model("gan")
    fit(extended, "gan", half_run)  # epochs=4 now: continues after epoch 2.
    assert_same_state(uninterrupted("gan")[0], extended)
    loaded = make_model("gan")
    capsys.readouterr()
    assert resume.resumable_fit(loaded, *training_data("gan"), epochs=3, directory=half_run,
                                batch_size=BATCH, seed=SEED) is None
    assert "is complete (4 epochs, 3 asked for)" in capsys.readouterr().out
    assert_same_state(uninterrupted("gan")[0], loaded)  # Loaded, not trained further.


def test_labelled_batches_follow_the_order_of_epoch_batches():
    x = np.arange(10, dtype="float32")[:, None] / 10
    y = np.arange(10) + 100
    labelled, steps = resume._batches(x, y, batch_size=4, seed=1, epochs=3, initial_epoch=1)
    plain, plain_steps = callbacks.epoch_batches(x, batch_size=4, seed=1, epochs=3,
                                                 initial_epoch=1)
    assert steps == plain_steps == 3
    pairs = list(labelled)
    for (images, labels), expected in zip(pairs, plain, strict=True):
        np.testing.assert_array_equal(images.numpy(), expected.numpy())
        np.testing.assert_array_equal(labels.numpy(), np.rint(images.numpy()[:, 0] * 10) + 100)


# Google Drive or the local disk.


def test_drive_mounted_looks_for_the_mydrive_folder(tmp_path):
    assert not resume.drive_mounted(tmp_path)
    (tmp_path / "MyDrive").mkdir()
    assert resume.drive_mounted(tmp_path)


@pytest.mark.parametrize("colab, expected", [
    (False, "on the local disk."), (True, "which a disconnect erases: call resume.mount_drive()")])
def test_run_directory_without_drive_stays_local(colab, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resume, "drive_mounted", lambda root=resume.DRIVE_ROOT: False)
    monkeypatch.setattr(environment, "on_colab", lambda: colab)
    directory = resume.run_directory("dcgan", local_root=tmp_path / "runs",
                                     drive_root=tmp_path / "drive")
    assert directory == os.path.join(tmp_path, "runs", "dcgan") and os.path.isdir(directory)
    assert expected in capsys.readouterr().out
    assert not (tmp_path / "drive").exists()


def test_run_directory_on_drive_says_so(drive, capsys):
    directory = resume.run_directory("dcgan", drive_root=drive)
    assert os.path.isdir(directory)
    assert capsys.readouterr().out == (f"Checkpoints go to {directory} on Google Drive: they "
                                       "survive a disconnect.\n")


def test_mount_drive_outside_colab_does_nothing(monkeypatch, capsys):
    monkeypatch.setattr(environment, "on_colab", lambda: False)
    assert resume.mount_drive() is None
    assert capsys.readouterr().out == "Not on Colab: checkpoints stay on the local disk.\n"


def test_mount_drive_on_colab_mounts_at_content_drive(monkeypatch):
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)  # What on_colab() looks for.
    monkeypatch.setattr(resume, "drive_mounted", lambda root=resume.DRIVE_ROOT: False)
    assert resume.mount_drive() == "/content/drive/MyDrive/dgm-course"
    assert mounted == ["/content/drive"]


# Errors.


@pytest.mark.parametrize("name", ["", " ", ".", "..", "runs/dcgan", "/tmp/dcgan", "a\\b"])
def test_run_directory_rejects_paths(name, tmp_path):
    with pytest.raises(ValueError, match="plain folder name, without path separators"):
        resume.run_directory(name, local_root=tmp_path)


def test_run_directory_rejects_non_strings(tmp_path):
    with pytest.raises(TypeError, match="must be a folder name"):
        resume.run_directory(3, local_root=tmp_path)


@pytest.mark.parametrize("kind, other, match", [
    ("gan", {"hidden": 8}, r"does not fit this model \(The shape of the target variable"),
    ("dcgan", {}, r"does not fit this model \(Layer '.*' expected"),
    # Only the optimizer differs: Keras would merely warn and keep the fresh optimizer state.
    ("gan", {"d_optimizer": lambda: keras.optimizers.SGD(1e-3)},
     r"does not fit this model \(Skipping variable loading for optimizer"),
])
def test_a_checkpoint_of_another_model_is_refused(kind, other, match, half_run):
    with pytest.raises(ValueError, match=match) as error:
        fit(make_model(kind, **other), "gan", half_run)  # half_run: a toy GAN's checkpoints.
    assert "saved from a different model" in str(error.value)
    assert "run_directory('another_name')" in str(error.value)


@pytest.mark.parametrize("change", ["batch_size", "seed", "data"])
def test_resuming_with_other_settings_is_refused(change, half_run):
    x, _ = training_data("gan")
    arguments = {"batch_size": BATCH, "seed": SEED, "data": x}
    arguments[change] = {"batch_size": 16, "seed": 8, "data": x[::-1].copy()}[change]
    key = {"data": "data_crc32"}.get(change, change)
    with pytest.raises(ValueError, match=f"was started with {key}=.* passes {key}=.* it would "
                                         "not continue the same run"):
        resume.resumable_fit(make_model("gan"), arguments["data"], epochs=EPOCHS,
                             directory=half_run, batch_size=arguments["batch_size"],
                             seed=arguments["seed"], verbose=0)


@pytest.mark.slow
def test_a_new_run_may_change_its_settings_before_its_first_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(make_model("gan"), "gan", tmp_path, epochs=1, callbacks=[disconnect(epoch=0)])
    x, _ = training_data("gan")
    # Nothing was saved yet, so another batch size starts the run afresh instead of failing.
    resume.resumable_fit(make_model("gan"), x, epochs=1, directory=tmp_path, batch_size=48,
                         seed=SEED, verbose=0)
    assert callbacks.Checkpoint(tmp_path).state()["epoch"] == 1


@pytest.mark.parametrize("model, error, match", [
    ("gan", TypeError, "must be a compiled keras.Model"),
    (lambda: keras.Sequential([keras.layers.Dense(1)]), ValueError, "is not compiled"),
])
def test_resumable_fit_needs_a_compiled_model(model, error, match, tmp_path):
    with pytest.raises(error, match=match):
        resume.resumable_fit(model() if callable(model) else model, training_data("gan")[0],
                             epochs=1, directory=tmp_path, batch_size=BATCH, seed=SEED)


@pytest.mark.slow
def test_resumable_fit_argument_errors(tmp_path):
    x, _ = training_data("gan")
    model = make_model("gan")
    with pytest.raises(TypeError, match="Normalise the data first"):
        resume.resumable_fit(model, x.astype("int64"), epochs=1, directory=tmp_path,
                             batch_size=BATCH, seed=SEED)
    with pytest.raises(ValueError, match="adds its own callbacks.Checkpoint"):
        resume.resumable_fit(model, x, epochs=1, directory=tmp_path, batch_size=BATCH,
                             seed=SEED, callbacks=[callbacks.Checkpoint(tmp_path / "other")])
    with pytest.raises(ValueError, match="one label per image"):
        resume.resumable_fit(model, x, np.zeros(3, "int64"), epochs=1, directory=tmp_path,
                             batch_size=BATCH, seed=SEED)
    images, _ = training_data("conditional_vae")
    with pytest.raises(ValueError, match=r"conditional model.*resumable_fit\(model, x_train, "
                                         r"y_train"):
        resume.resumable_fit(make_model("conditional_vae"), images, epochs=1,
                             directory=tmp_path, batch_size=BATCH, seed=SEED)
