"""Run profiles, the environment report and seeding."""

import numpy as np
import pytest

from dgm_course import by_profile, describe_profile, environment, get_profile, profiles


@pytest.mark.parametrize("name", profiles.PROFILES)
def test_profile_from_environment_variable(monkeypatch, name):
    monkeypatch.setenv("DGM_PROFILE", f" {name.upper()} ")
    assert get_profile() == name
    assert by_profile(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]
    assert "set by DGM_PROFILE" in describe_profile()


def test_unknown_profile_says_what_to_do(monkeypatch):
    monkeypatch.setenv("DGM_PROFILE", "laptop")
    with pytest.raises(ValueError, match=r"'laptop' is not a run profile.*smoke, cpu, gpu.*export"):
        get_profile()


def test_auto_detection_follows_the_gpus(monkeypatch):
    monkeypatch.delenv("DGM_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "gpu_names", lambda: ())
    assert get_profile() == "cpu"
    assert "no GPU visible" in describe_profile()
    monkeypatch.setattr(profiles, "gpu_names", lambda: ("/physical_device:GPU:0",))
    assert get_profile() == "gpu"
    assert "GPU:0" in describe_profile()


def test_by_profile_needs_all_three_values():
    with pytest.raises(TypeError):
        by_profile(smoke=1, cpu=2)


def test_environment_report_has_the_versions():
    report = environment.environment_report()
    assert report["keras"].startswith("3.")
    assert report["backend"] == "tensorflow"
    assert report["profile"] == get_profile()
    assert set(report) >= {"python", "tensorflow", "gpus", "colab", "cpus"}


def test_old_versions_are_refused_with_the_fix(monkeypatch):
    monkeypatch.setitem(environment.MINIMUM_VERSIONS, "keras", (99, 0))
    with pytest.raises(RuntimeError, match=r"keras 3\..* the course needs keras>=99\.0.*pip install"):
        environment.environment_report()


def test_gpu_advice_on_colab_without_gpu(monkeypatch):
    monkeypatch.setattr(profiles, "gpu_names", lambda: ())
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    assert "Change runtime type" in environment.gpu_advice()


@pytest.mark.slow
def test_set_seed_repeats_numbers_and_rejects_bad_seeds():
    import keras

    environment.set_seed(3)
    first = (np.random.rand(3), keras.random.normal((3,)).numpy())
    environment.set_seed(3)
    second = (np.random.rand(3), keras.random.normal((3,)).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    with pytest.raises(TypeError, match="non-negative int"):
        environment.set_seed(1.5)
