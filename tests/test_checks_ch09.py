"""The checks of chapter 09 against right answers (as a learner might write them) and the typical
wrong ones, each of which must be rejected with the message that names its mistake; and the
lecture's formulas (number formats, loss scaling, the replicas' summed gradients, the linear
scaling rule with warm-up, prefetching) against independent references.

Exercise 1 runs on two replicas: tests/conftest.py splits the CPU into two logical devices
before TensorFlow starts."""

import threading

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dgm_course import accelerate
from dgm_course.checks import ExerciseError, ch09

# Exercise 1: a step that is right on several replicas and under a LossScaleOptimizer.


def _replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _loss(model, x, y):
    return ops.mean(ops.square(ops.cast(model(x, training=True), "float32") - y))


def step_right(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
        scaled = loss / _replicas()
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scaled = optimizer.scale_loss(scaled)
    optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)
    return loss


def step_package(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
        scaled = accelerate.scaled_loss(loss, optimizer)
    optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)
    return loss


def step_scale_loss_always(model, optimizer, x, y):
    """Keras 3's optimizers all have scale_loss (S times the loss, or the loss itself)."""
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        scaled = optimizer.scale_loss(loss / replicas)
    gradients = tape.gradient(scaled, model.trainable_weights)
    optimizer.apply(gradients, model.trainable_weights)
    return loss


def step_dynamic_scale(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
        scaled = loss / _replicas()
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scaled = scaled * optimizer.dynamic_scale
    optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)
    return loss


def step_loss_object(model, optimizer, x, y):
    """A Keras loss object computes in float32, but under tf.distribute it divides by the
    number of replicas itself: with the explicit division, twice."""
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
        scaled = loss / _replicas()
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scaled = optimizer.scale_loss(scaled)
    optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)
    return loss


def step_without(*, divide=True, scale=True, inside=True, unscale_by_hand=False, inner=False,
                 scale_gradients=False, replicas=None, keras_function=False, returned="loss"):
    """A step with one or more of the typical mistakes."""
    def step(model, optimizer, x, y):
        lso = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            output = model(x, training=True)
            if keras_function:
                loss = ops.mean(keras.losses.mean_squared_error(y, output))
            else:
                loss = ops.mean(ops.square(ops.cast(output, "float32") - y))
            scaled = loss / (replicas or _replicas()) if divide else loss
            if inside and scale and lso:
                scaled = optimizer.scale_loss(scaled)
        if not inside and scale and lso:
            scaled = optimizer.scale_loss(scaled)
        gradients = tape.gradient(scaled, model.trainable_weights)
        if lso and (unscale_by_hand or scale_gradients):
            factor = 1 / optimizer.dynamic_scale if unscale_by_hand else optimizer.dynamic_scale
            gradients = [gradient * factor for gradient in gradients]
        (optimizer.inner_optimizer if inner and lso else optimizer).apply(
            gradients, model.trainable_weights)
        return {"loss": loss, "scaled": scaled}[returned]
    return step


def _tf_minus(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))  # float16 - float32
        scaled = loss / _replicas()
    optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)
    return loss


def replica_step_answers():
    """{name: (answer, None for a right one or the pattern its rejection must match)}."""
    return {
        "right": (step_right, None),
        "package": (step_package, None),
        "scale_loss_always": (step_scale_loss_always, None),
        "dynamic_scale": (step_dynamic_scale, None),
        "loss_object_divides_again": (step_loss_object, "already divides"),
        "no_division": (step_without(divide=False), "2 times too large"),
        "no_scaling": (step_without(scale=False), "not multiplied by S"),
        "scaled_outside_tape": (step_without(inside=False), "block closed"),
        "gradients_scaled_after": (step_without(scale=False, scale_gradients=True),
                                   "did not move.*too late"),
        "unscaled_by_hand": (step_without(unscale_by_hand=True), "divided by S by hand"),
        "inner_optimizer": (step_without(inner=True), "32768 times too large"),
        "float16_loss": (step_without(keras_function=True), "computed in float16"),
        "float16_minus_float32": (_tf_minus, "Cast it to float32"),
        "hard_coded_two": (step_without(replicas=2), "half the right one with a single"),
        "returns_scaled": (step_without(returned="scaled"), "divided by the number of replicas"),
    }


def _unwritten(*args, **kwargs):
    raise NotImplementedError()


@pytest.fixture(scope="module")
def mirrored():
    """The MirroredStrategy over the two logical CPUs that tests/conftest.py makes."""
    if len(tf.config.list_logical_devices("CPU")) < 2:
        # Fail, not skip, as tests/test_accelerate.py does: a missing device means the split
        # in conftest.py broke, and the two-replica tests must not go quiet.
        pytest.fail("needs two logical CPU devices: tests/conftest.py makes them with "
                    "accelerate.split_cpu(2), but TensorFlow had started before it ran")
    return accelerate.choose_strategy(cpu_replicas=True, tpu=False)  # the one the check uses


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, (_, match) in replica_step_answers().items()
                                  if match is None])
def test_replica_step_right_answers_pass(mirrored, name, capsys):
    ch09.check_replica_step(replica_step_answers()[name][0])
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.slow
@pytest.mark.parametrize("name, match", [(name, match) for name, (_, match)
                                         in replica_step_answers().items() if match])
def test_replica_step_mistakes_are_named(mirrored, name, match):
    with pytest.raises(ExerciseError, match=match):
        ch09.check_replica_step(replica_step_answers()[name][0])


def test_replica_step_passes_an_unwritten_answer_through(mirrored):
    with pytest.raises(NotImplementedError):
        ch09.check_replica_step(_unwritten)


def test_replica_step_says_how_to_get_two_replicas_when_there_is_one_device(monkeypatch):
    one_cpu = tf.config.list_logical_devices("CPU")[:1]
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: one_cpu)
    with pytest.raises(RuntimeError, match=r"split_cpu\(2\)"):
        ch09.check_replica_step(step_right)


# The lecture's data-parallel formula on a real MirroredStrategy:
# sum over replicas r of grad(L_r / R) = grad(L), the mean over the global batch.


def sgd_update(strategy, x, y, *, divide):
    """The change of w after one SGD step (rate 0.1) of y = x w + b from w = 1, b = 0 on the
    global batch (x, y), each replica's loss passed through accelerate.scaled_loss or not."""
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.set_weights([np.ones((3, 1), "float32"), np.zeros(1, "float32")])
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_weights)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(model(x) - y))
            scaled = accelerate.scaled_loss(loss, optimizer) if divide else loss
        optimizer.apply(tape.gradient(scaled, model.trainable_weights), model.trainable_weights)

    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x)))
    tf.function(lambda x, y: strategy.run(step, args=(x, y)))(*next(iter(batches)))
    return model.get_weights()[0].ravel() - 1.0


def test_scaled_loss_makes_two_replicas_take_the_one_device_step(mirrored):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    numpy_update = (-0.1 * 2 * x.T @ (x @ np.ones((3, 1)) - y) / 8).ravel()  # -eta grad L
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    np.testing.assert_allclose(sgd_update(one_device, x, y, divide=True), numpy_update, rtol=1e-5)
    np.testing.assert_allclose(sgd_update(mirrored, x, y, divide=True), numpy_update, rtol=1e-5)
    np.testing.assert_allclose(sgd_update(mirrored, x, y, divide=False), 2 * numpy_update,
                               rtol=1e-5)


def test_replica_gradients_sum_to_the_global_mean_gradient():
    """sum_r grad(L_r / R) = grad(L) for a linear model, in NumPy (closed-form gradients)."""
    rng = np.random.default_rng(1)
    x, y, w = rng.normal(size=(12, 4)), rng.normal(size=12), rng.normal(size=4)

    def gradient(x, y):  # d/dw mean((x w - y)^2)
        return 2 * x.T @ (x @ w - y) / len(y)

    for replicas in (1, 2, 3, 4):
        parts = zip(np.split(x, replicas), np.split(y, replicas))
        summed = sum(gradient(xr, yr) / replicas for xr, yr in parts)
        np.testing.assert_allclose(summed, gradient(x, y), rtol=1e-12)


# The lecture's number formats and loss scaling.


@pytest.mark.parametrize("name, exponent_bits, mantissa_bits",
                         [("float32", 8, 23), ("float16", 5, 10), ("bfloat16", 8, 7)])
def test_format_formulas_match_the_dtypes(name, exponent_bits, mantissa_bits):
    info = ml_dtypes.finfo(name)
    bias = 2 ** (exponent_bits - 1) - 1
    assert (2 - 2.0**-mantissa_bits) * 2.0**bias == float(info.max)
    assert 2.0 ** (1 - bias) == float(info.smallest_normal)
    assert 2.0 ** (1 - bias - mantissa_bits) == float(info.smallest_subnormal)
    assert 2.0**-mantissa_bits == float(info.eps)


def test_loss_scaling_keeps_a_gradient_float16_would_flush():
    gradient, scale = 1e-8, 2.0**15
    assert np.float16(gradient) == 0.0
    assert ml_dtypes.bfloat16(gradient) != 0.0  # bfloat16 has float32's range.
    scaled = np.float16(gradient * scale)
    assert scaled != 0.0
    assert abs(np.float32(scaled) / scale - gradient) / gradient < 2.0**-11  # float16 precision
    # A gradient above float16's largest number, times S, overflows: the step must be skipped.
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(np.float32(4.0) * scale * 2))


def test_loss_scale_optimizer_halves_and_skips_on_overflow_and_doubles_after_growth_steps():
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5),
                                                    dynamic_growth_steps=2)
    weight = keras.Variable(np.ones(2, "float32"))
    optimizer.build([weight])
    assert float(optimizer.dynamic_scale) == 2.0**15
    optimizer.apply([tf.constant([np.inf, 1.0])], [weight])
    assert float(optimizer.dynamic_scale) == 2.0**14
    np.testing.assert_array_equal(weight.numpy(), [1.0, 1.0])  # the step was skipped
    optimizer.apply([tf.constant([2.0**14, 2.0**15])], [weight])  # gradients of S * loss
    np.testing.assert_allclose(weight.numpy(), [1.0 - 0.5 * 1.0, 1.0 - 0.5 * 2.0])  # g / S
    assert float(optimizer.dynamic_scale) == 2.0**14
    optimizer.apply([tf.constant([0.0, 0.0])], [weight])
    assert float(optimizer.dynamic_scale) == 2.0**15  # doubled after 2 finite steps
    assert float(optimizer.scale_loss(tf.constant(3.0))) == 3.0 * 2.0**15


def _overlapped_steps(*, n, prefetch):
    """Returns how many of n training steps overlapped with the loading of the next
    element. Element i begins loading only once step i - 1 has begun, and records whether that
    step is still running; with a prefetch, step i - 1 ends only after element i has been
    recorded (without one the step cannot wait for it: element i loads only once the step ends).
    The count therefore depends on the pipeline's structure alone, never on timing."""
    wait = prefetch is not None
    step_began = [threading.Event() for _ in range(n + 2)]
    recorded = [threading.Event() for _ in range(n + 2)]
    state = {"in_step": False, "overlaps": 0}

    def load(index):
        if index > 0:
            step_began[index - 1].wait(timeout=2)
            state["overlaps"] += state["in_step"]
        recorded[index].set()
        return index

    pipeline = tf.data.Dataset.range(n + 2).map(
        lambda index: tf.numpy_function(load, [index], tf.int64, stateful=True))
    if prefetch is not None:
        pipeline = pipeline.prefetch(prefetch)
    options = tf.data.Options()
    # tf.data's automatic optimisations would parallelise the map and add a prefetch.
    options.experimental_optimization.map_parallelization = False
    options.experimental_optimization.inject_prefetch = False
    for step, _ in enumerate(pipeline.with_options(options).take(n)):
        state["in_step"] = True  # the training step
        step_began[step].set()
        if wait:
            recorded[step + 1].wait(timeout=2)  # the next element loads during this step
        state["in_step"] = False
    return state["overlaps"]


@pytest.fixture
def without_op_determinism():
    """environment.set_seed, called by earlier tests in the same process, enables op
    determinism, under which tf.data runs a stateful map synchronously even after a prefetch.
    Keras has no public switch back: TensorFlow's own config module has one."""
    from tensorflow.python.framework import config

    enabled = config.is_op_determinism_enabled()
    config.disable_op_determinism()
    yield
    if enabled:
        config.enable_op_determinism()


def test_a_prefetched_pipeline_loads_the_next_batch_while_the_step_runs(without_op_determinism):
    """Without prefetch no element loads during a step (n steps take n (t_data + t_step));
    with prefetch(1) the next element loads during every step (about n max(t_data, t_step))."""
    assert _overlapped_steps(n=8, prefetch=None) == 0
    assert _overlapped_steps(n=8, prefetch=1) == 8


# Exercise 2: the linear scaling rule.


def scaled_right(base_learning_rate, *, base_batch_size, per_replica_batch_size, replicas):
    global_batch_size = per_replica_batch_size * replicas
    return base_learning_rate * global_batch_size / base_batch_size


def scaled_tensor(base_learning_rate, *, base_batch_size, per_replica_batch_size, replicas):
    k = ops.convert_to_tensor(per_replica_batch_size * replicas / base_batch_size)
    return base_learning_rate * k


@pytest.mark.parametrize("right", [scaled_right, scaled_tensor])
def test_scaled_learning_rate_right_answers_pass(right, capsys):
    ch09.check_scaled_learning_rate(right)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("wrong, match", [
    (lambda eta, base_batch_size, per_replica_batch_size, replicas:
     eta * np.sqrt(per_replica_batch_size * replicas / base_batch_size), "square root"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas:
     eta * per_replica_batch_size / base_batch_size, "replicas are left out"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas:
     eta * base_batch_size / (per_replica_batch_size * replicas), "upside down"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas: eta * replicas,
     "number of replicas only"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas: eta, "unchanged"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas: "0.4", "not a number"),
    (lambda eta, base_batch_size, per_replica_batch_size, replicas:
     3 * eta * per_replica_batch_size * replicas / base_batch_size, "expected"),
])
def test_scaled_learning_rate_mistakes_are_named(wrong, match):
    def answer(base_learning_rate, *, base_batch_size, per_replica_batch_size, replicas):
        return wrong(base_learning_rate, base_batch_size, per_replica_batch_size, replicas)

    with pytest.raises(ExerciseError, match=match):
        ch09.check_scaled_learning_rate(answer)


# Exercise 3: the warm-up; Keras's CosineDecay with alpha=1 (the lecture's schedule) is one.


def warmup_right(step, *, base_learning_rate, target_learning_rate, warmup_steps):
    fraction = ops.minimum(ops.cast(step, "float32") / warmup_steps, 1.0)
    return base_learning_rate + (target_learning_rate - base_learning_rate) * fraction


def warmup_if(step, *, base_learning_rate, target_learning_rate, warmup_steps):
    if step < warmup_steps:  # autograph turns this into a tf.cond
        return base_learning_rate + (target_learning_rate - base_learning_rate) * (
            tf.cast(step, tf.float32) / warmup_steps)
    return tf.constant(target_learning_rate, tf.float32)


def warmup_keras(step, *, base_learning_rate, target_learning_rate, warmup_steps):
    return keras.optimizers.schedules.CosineDecay(
        base_learning_rate, decay_steps=1, alpha=1.0, warmup_target=target_learning_rate,
        warmup_steps=warmup_steps)(step)


@pytest.mark.parametrize("right", [warmup_right, warmup_if, warmup_keras])
def test_warmup_learning_rate_right_answers_pass(right, capsys):
    ch09.check_warmup_learning_rate(right)
    assert capsys.readouterr().out.startswith("✅")


def warmup_wrong(rate):
    def answer(step, *, base_learning_rate, target_learning_rate, warmup_steps):
        return rate(ops.cast(step, "float32"), base_learning_rate, target_learning_rate,
                    float(warmup_steps))
    return answer


def _integer_division(step, *, base_learning_rate, target_learning_rate, warmup_steps):
    fraction = ops.cast(ops.minimum(step // warmup_steps, 1), "float32")
    return base_learning_rate + (target_learning_rate - base_learning_rate) * fraction


def _python_min(step, *, base_learning_rate, target_learning_rate, warmup_steps):
    fraction = min(step / warmup_steps, 1.0)
    return base_learning_rate + (target_learning_rate - base_learning_rate) * fraction


@pytest.mark.parametrize("wrong, match", [
    (warmup_wrong(lambda t, b, e, n: e * ops.minimum(t / n, 1.0)), "starts at 0"),
    (warmup_wrong(lambda t, b, e, n: b + (e - b) * t / n), "keeps growing"),
    (warmup_wrong(lambda t, b, e, n: e + 0 * t), "no warm-up"),
    (warmup_wrong(lambda t, b, e, n: b + 0 * t), "stays at the base"),
    (warmup_wrong(lambda t, b, e, n: b + (e - b) * ops.minimum((t + 1) / n, 1.0)),
     "one step ahead"),
    (warmup_wrong(lambda t, b, e, n: ops.where(t < n, b + (e - b) * t / n,
                                               e * ops.cos(np.pi * (t - n) / 2000))),
     "falls below"),
    (_integer_division, "integer division"),
    (_python_min, "tensor step"),
    (warmup_wrong(lambda t, b, e, n: b + (e - b) * ops.minimum(t / (n - 1), 1.0)),
     "not the linear warm-up"),
])
def test_warmup_learning_rate_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch09.check_warmup_learning_rate(wrong)


# Exercise 4: a pipeline that beats the naive one.


def pipeline_right(images, *, load, batch_size, seed):
    pipeline = tf.data.Dataset.from_tensor_slices(images)
    pipeline = pipeline.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    pipeline = pipeline.shuffle(len(images), seed=seed).batch(batch_size)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def pipeline_with_options(images, *, load, batch_size, seed):
    options = tf.data.Options()
    options.deterministic = True
    return pipeline_right(images, load=load, batch_size=batch_size, seed=seed).with_options(options)


@pytest.mark.slow
@pytest.mark.parametrize("right", [pipeline_right, pipeline_with_options])
def test_fast_pipeline_right_answers_pass(right, capsys):
    ch09.check_fast_pipeline(right)
    assert capsys.readouterr().out.startswith("✅")


def pipeline(*steps):
    """A pipeline made of `steps`, each a function (dataset, images, load, batch_size, seed)."""
    def build(images, *, load, batch_size, seed):
        dataset = tf.data.Dataset.from_tensor_slices(images)
        for step in steps:
            dataset = step(dataset, images, load, batch_size, seed)
        return dataset
    return build


def parallel_map(d, i, load, b, s):
    return d.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def cache(d, i, load, b, s):
    return d.cache()


def shuffle(d, i, load, b, s):
    return d.shuffle(len(i), seed=s)


def batch(d, i, load, b, s):
    return d.batch(b)


def prefetch(d, i, load, b, s):
    return d.prefetch(tf.data.AUTOTUNE)


@pytest.mark.parametrize("wrong, match", [
    (pipeline(shuffle, lambda d, i, load, b, s: d.map(load), batch), "loads every image again"),
    (pipeline(parallel_map, shuffle, batch, prefetch), "loads every image again"),
    (pipeline(cache, parallel_map, shuffle, batch, prefetch), r"cache\(\) comes before map"),
    (pipeline(parallel_map, shuffle, cache, batch, prefetch), "same order"),
    (pipeline(parallel_map, cache, lambda d, i, load, b, s: d.shuffle(
        len(i), seed=s, reshuffle_each_iteration=False), batch, prefetch), "same order"),
    (pipeline(parallel_map, cache, batch, prefetch), "stored order"),
    (pipeline(parallel_map, cache, lambda d, i, load, b, s: d.shuffle(len(i)), batch, prefetch),
     "not seeded"),
    (pipeline(parallel_map, cache, lambda d, i, load, b, s: d.shuffle(len(i), seed=7), batch,
              prefetch), "seed argument is ignored"),
    (pipeline(parallel_map, cache, lambda d, i, load, b, s: d.shuffle(8, seed=s), batch, prefetch),
     "buffer is too small"),
    (pipeline(parallel_map, cache, shuffle, lambda d, i, load, b, s: d.batch(
        b, drop_remainder=True), prefetch), "drop_remainder"),
    (pipeline(parallel_map, cache, shuffle, batch, lambda d, i, load, b, s: d.repeat(), prefetch),
     "endless"),
    (pipeline(lambda d, i, load, b, s: d.map(load), cache, shuffle, batch, prefetch),
     "one image at a time"),
    (pipeline(parallel_map, cache, shuffle, batch), "does not end in prefetch"),
    (pipeline(cache, shuffle, batch, prefetch), "float32 batches"),
    (pipeline(parallel_map, lambda d, i, load, b, s: d.map(load), cache, shuffle, batch, prefetch),
     r"not load\(image\)"),
    (pipeline(parallel_map, shuffle, batch, cache, prefetch), "same order|same batches"),
    (pipeline(parallel_map, batch, cache, lambda d, i, load, b, s: d.shuffle(100, seed=s),
              prefetch), "batch sizes|same batches"),
    (lambda images, *, load, batch_size, seed: list(images), "return the tf.data.Dataset"),
])
@pytest.mark.slow
def test_fast_pipeline_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch09.check_fast_pipeline(wrong)


# An exercise not done yet raises NotImplementedError, which every check lets through.


@pytest.mark.parametrize("check", [ch09.check_scaled_learning_rate,
                                   ch09.check_warmup_learning_rate, ch09.check_fast_pipeline])
def test_unwritten_exercises_pass_through(check):
    with pytest.raises(NotImplementedError):
        check(_unwritten)
