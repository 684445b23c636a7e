"""The checks of chapter 10 against right answers (as a learner might write them) and the
typical wrong ones, each of which must be rejected with the message that names its mistake."""

import numpy as np
import pytest
import scipy.special
from keras import ops

from dgm_course import generative_classifier, semi_supervised
from dgm_course.checks import ExerciseError, ch10

# Exercise 1: the unsupervised loss of the K + 1-class discriminator.


def lse(logits):
    return ops.logsumexp(logits, axis=-1)


def unsupervised_softplus(real_logits, fake_logits):
    return ops.mean(ops.softplus(-lse(real_logits))) + ops.mean(ops.softplus(lse(fake_logits)))


def unsupervised_log_sigmoid(real_logits, fake_logits):
    return -ops.mean(ops.log_sigmoid(lse(real_logits))) - ops.mean(
        ops.log_sigmoid(-lse(fake_logits)))


def unsupervised_paper_code(real_logits, fake_logits):
    # Salimans et al.'s code: -mean(lse) + mean(softplus(lse)) for the unlabelled images.
    real = lse(real_logits)
    return -ops.mean(real) + ops.mean(ops.softplus(real)) + ops.mean(ops.softplus(lse(fake_logits)))


@pytest.mark.parametrize("right", [unsupervised_softplus, unsupervised_log_sigmoid,
                                   unsupervised_paper_code, semi_supervised.unsupervised_loss])
def test_unsupervised_loss_right_answers_pass(right, capsys):
    ch10.check_unsupervised_loss(right)
    assert capsys.readouterr().out.startswith("✅")


def learned_fake_logit(real_logits, fake_logits):
    # D = 1 - softmax(l)[K]: the last of K logits taken as the fake class's.
    real_d = ops.sum(ops.softmax(real_logits)[:, :-1], axis=-1)
    return -ops.mean(ops.log(real_d)) - ops.mean(ops.log_softmax(fake_logits)[:, -1])


def through_z(real_logits, fake_logits):
    # Z = sum exp(l) without the log-sum-exp shift: overflows for l = 100.
    z_real, z_fake = ops.sum(ops.exp(real_logits), axis=-1), ops.sum(ops.exp(fake_logits), axis=-1)
    return -ops.mean(ops.log(z_real / (z_real + 1))) - ops.mean(ops.log(1 / (z_fake + 1)))


@pytest.mark.parametrize("wrong, match", [
    (lambda r, f: ops.mean(ops.softplus(-lse(r))), "only the real"),
    (lambda r, f: ops.mean(ops.softplus(lse(f))), "only the fakes"),
    (lambda r, f: ops.mean(ops.softplus(lse(r))) + ops.mean(ops.softplus(-lse(f))),
     "signs are swapped"),
    (lambda r, f: -unsupervised_softplus(r, f), "flipped sign"),
    (learned_fake_logit, "learned 'fake' logit"),
    (lambda r, f: ops.sum(ops.softplus(-lse(r))) + ops.sum(ops.softplus(lse(f))), "summed"),
    (lambda r, f: ops.mean(ops.concatenate([ops.softplus(-lse(r)), ops.softplus(lse(f))])),
     "averaged together"),
    (lambda r, f: ops.mean(ops.softplus(-ops.max(r, axis=-1))) + ops.mean(
        ops.softplus(ops.max(f, axis=-1))), "max_k"),
    (lambda r, f: ops.mean(ops.softplus(-r)) + ops.mean(ops.softplus(f)), "sigmoid of each"),
    (lambda r, f: -ops.mean(ops.log(ops.sigmoid(lse(r)))) - ops.mean(
        ops.log(1 - ops.sigmoid(lse(f)))), "log 0"),
    (through_z, "overflows"),
    (lambda r, f: ops.softplus(-lse(r)), "one value per image"),
    (lambda r, f: 2 * unsupervised_softplus(r, f), "expected L_unsupervised"),
    (lambda r, f: unsupervised_softplus(r, f) + undefined_name, "raised NameError"),  # noqa: F821
])
def test_unsupervised_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch10.check_unsupervised_loss(wrong)


def test_unsupervised_loss_not_done_passes_through():
    def not_done(real_logits, fake_logits):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        ch10.check_unsupervised_loss(not_done)


# Exercise 2: Bayes' rule over class log-likelihoods.


def posterior_numpy(log_likelihoods, log_prior):
    joint = log_likelihoods + log_prior
    joint = joint - joint.max(axis=1, keepdims=True)
    probabilities = np.exp(joint)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("right", [
    posterior_numpy,
    lambda ll, lp: scipy.special.softmax(ll + lp, axis=1),
    lambda ll, lp: np.exp(ll + lp - scipy.special.logsumexp(ll + lp, axis=1, keepdims=True)),
    lambda ll, lp: ops.softmax(ops.convert_to_tensor(ll + lp), axis=-1),
    generative_classifier.bayes_posterior,
])
def test_bayes_posterior_right_answers_pass(right, capsys):
    ch10.check_bayes_posterior(right)
    assert capsys.readouterr().out.startswith("✅")


def plain_exp(log_likelihoods, log_prior):
    joint = np.exp(log_likelihoods + log_prior)
    return joint / joint.sum(axis=1, keepdims=True)


def plain_exp_float32(log_likelihoods, log_prior):
    joint = ops.exp(ops.convert_to_tensor((log_likelihoods + log_prior).astype("float32")))
    return joint / ops.sum(joint, axis=1, keepdims=True)


@pytest.mark.parametrize("wrong, match", [
    (lambda ll, lp: posterior_numpy(ll, 0.0), "prior is missing"),
    (lambda ll, lp: posterior_numpy(ll, -lp), "prior was subtracted"),
    (lambda ll, lp: np.log(posterior_numpy(ll, lp)), "returned log p"),
    (lambda ll, lp: scipy.special.softmax(ll + lp, axis=0), "wrong axis"),
    (plain_exp, "exp\\(-1000\\) is 0"),
    (plain_exp_float32, "exp\\(-100\\) is 0"),
    (lambda ll, lp: np.exp(ll + lp), "do not sum to 1"),
    (lambda ll, lp: posterior_numpy(ll, lp)[:, :-1], "shape"),
    (lambda ll, lp: posterior_numpy(ll * 1.1, lp), "expected p\\(y \\| x\\)"),
    (lambda ll, lp: posterior_numpy(ll, lp) + undefined_name, "raised NameError"),  # noqa: F821
])
def test_bayes_posterior_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch10.check_bayes_posterior(wrong)
