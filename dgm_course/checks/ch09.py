"""Checks for the exercises of chapter 09, "Training at scale"
(exercises/09_training_at_scale.ipynb; the lecture is notebooks/09_training_at_scale.ipynb).

The train step is run on two replicas and in float16 with numbers chosen so that every mistake
moves the weight by a known factor (or not at all); the learning rates are compared with the
formulas transcribed in NumPy; the pipeline is read twice and timed against a naive one.
"""

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dgm_course import accelerate
from dgm_course.checks import fail, passed

# Exercise 1. One weight w = 2^-10, inputs x = 1, targets w + k * 2^-e: every number below is a
# power of two or a small multiple of one, so float16 and float32 either hold it exactly or
# flush it to zero, and the update of a right answer is known to the last bit.
_W0 = 2.0**-10
_LEARNING_RATE = 2.0**10


def _cpu_replicas():
    """A MirroredStrategy over the logical CPUs made by accelerate.split_cpu: the very object
    `accelerate.choose_strategy(cpu_replicas=True)` returns on a machine without GPUs (a second
    MirroredStrategy over the same devices breaks the first all-reduce; see accelerate._once)."""
    devices = tuple(device.name for device in tf.config.list_logical_devices("CPU"))
    if len(devices) < 2:
        raise RuntimeError(
            "This check runs your step on two replicas, but TensorFlow has one CPU device. Run "
            "the notebook from the top in a fresh kernel: its first cell calls "
            "accelerate.split_cpu(2) before TensorFlow starts.")
    return accelerate._once(devices, lambda: tf.distribute.MirroredStrategy(list(devices)))


def _one_weight_model(strategy, *, policy, loss_scale):
    """x -> w x with w = 2^-10, computing in `policy`; SGD, wrapped in a LossScaleOptimizer."""
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((1,)),
            layers.Dense(1, use_bias=False, dtype=policy,
                         kernel_initializer=keras.initializers.Constant(_W0))])
        optimizer = keras.optimizers.SGD(_LEARNING_RATE)
        if loss_scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_weights)
    return model, optimizer


def _run_step(replica_step, strategy, model, optimizer, targets, exercise, hint):
    """Runs `replica_step` once on the global batch (x = 1, y = targets), compiled as in fit;
    returns (the weight's update, the replicas' returned losses)."""
    x = np.ones((len(targets), 1), "float32")
    y = np.asarray(targets, "float32")[:, None]
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(len(targets)))

    @tf.function
    def step(x, y):
        return strategy.run(replica_step, args=(model, optimizer, x, y))

    try:
        losses = step(*next(iter(batches)))
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001  (TensorFlow raises its own error classes)
        _name_step_error(error, exercise, hint)
    losses = [np.asarray(keras.ops.convert_to_numpy(value), np.float64)
              for value in strategy.experimental_local_results(losses)]
    if any(value.size != 1 for value in losses):
        fail(exercise, f"replica_step returned shapes {[v.shape for v in losses]}; return the "
             "loss, one number (the mean over this replica's batch).", hint)
    update = float(model.get_weights()[0][0, 0]) - _W0
    return update, [float(value.reshape(())) for value in losses]


def _name_step_error(error, exercise, hint):
    text = str(error)
    clues = ("expected to be a half tensor", "expected to be a float tensor", "does not match type")
    if any(clue in text for clue in clues):
        fail(exercise, "float16 and float32 tensors were mixed in one operation: under mixed "
             "precision the model's output is float16. Cast it to float32 before the loss: "
             "ops.cast(model(x, training=True), 'float32').", hint)
    if "No gradients" in text or ("None" in text and "gradient" in text.lower()):
        fail(exercise, "no gradient reached the weights: the loss (or its scaled version) was "
             "computed after the `with tf.GradientTape()` block closed, so the tape never saw "
             "it. Compute loss and scaled loss inside the block.", hint)
    fail(exercise, f"replica_step raised {type(error).__name__}: {text[:200]}", hint)


def _expected(targets, replicas):
    """The update and the per-replica mean losses of a right answer, in float64."""
    residuals = _W0 - np.asarray(targets, np.float64)  # model output (w x, x = 1) minus target
    gradient = np.mean(2.0 * residuals)  # d/dw of the mean over the global batch
    halves = np.split(residuals, replicas)
    return -_LEARNING_RATE * gradient, [float(np.mean(half**2)) for half in halves]


def _compare_update(update, expected, exercise, hint, *, scaled, replicas):
    """Names the mistake behind an update that is a known multiple of the right one."""
    ratio = update / expected
    if np.isclose(ratio, 1.0, rtol=1e-3):
        return
    if update == 0.0:
        fail(exercise, "the weight did not move: its gradient (about 2^-31 before scaling) "
             "underflowed to zero in float16. Multiply the loss by the loss scale inside the "
             "tape (optimizer.scale_loss(loss)); scaling the gradients afterwards is too late, "
             "they are already zero.", hint)
    mistakes = {}
    if replicas == 1:
        mistakes[0.5] = ("the update is half the right one with a single replica: the loss was "
                         "divided by 2 whatever the number of replicas. Ask the strategy: "
                         "tf.distribute.get_strategy().num_replicas_in_sync.")
    else:
        mistakes[replicas] = (f"the update is {replicas} times too large with {replicas} "
                              "replicas: the loss was not divided by the number of replicas, "
                              "and optimizer.apply sums their gradients.")
        mistakes[1 / replicas] = (f"the update is 1/{replicas} of the right one: the loss was "
                                  "divided by the number of replicas twice. (A keras.losses "
                                  "object such as MeanSquaredError() already divides its mean "
                                  "by the number of replicas under tf.distribute.)")
    if scaled:
        scale = 2.0**15
        mistakes.update({
            scale: "the update is S = 32768 times too large: the gradients were applied without "
                   "dividing by the loss scale (optimizer.inner_optimizer.apply skips that). "
                   "Apply them with the LossScaleOptimizer itself.",
            1 / scale: "the update is S = 32768 times too small: LossScaleOptimizer.apply "
                       "divides the gradients by its scale S, but the loss was not multiplied "
                       "by S (optimizer.scale_loss), or the gradients were divided by S by "
                       "hand as well.",
            replicas * scale: f"the update is {replicas} S too large: no division by the "
                              "replicas and no unscaling."})
    for factor, problem in mistakes.items():
        if np.isclose(ratio, factor, rtol=1e-3):
            fail(exercise, problem, hint)
    fail(exercise, f"the weight moved by {update:.4g}; a right step moves it by {expected:.4g} "
         f"({ratio:.3g} times as much).", hint)


def _compare_losses(losses, expected, exercise, hint):
    replicas = len(losses)
    for value, right in zip(losses, expected):
        if np.isclose(value, right, rtol=1e-3):
            continue
        for factor, what in ((1 / replicas, "divided by the number of replicas"),
                             (2.0**15, "multiplied by the loss scale"),
                             (2.0**15 / replicas, "scaled and divided by the replicas")):
            if np.isclose(value, right * factor, rtol=1e-3):
                fail(exercise, f"it returned the loss {what}: return `loss` itself (the mean "
                     "over this replica's batch), which is what the logs should show; only "
                     "the gradients need the scaled one.", hint)
        fail(exercise, f"it returned {value:.6g}; the mean squared error over this replica's "
             f"batch is {right:.6g}.", hint)


def check_replica_step(replica_step):
    """Exercise 1: `replica_step(model, optimizer, x, y)` -> the loss; one step of minimising
    mean((model(x) - y)^2), correct on several replicas and under a LossScaleOptimizer."""
    exercise = "Exercise 1"
    hint = ("Inside the tape: loss = ops.mean(ops.square(ops.cast(model(x, training=True), "
            "'float32') - y)); scaled = loss / replicas; if the optimizer is a "
            "LossScaleOptimizer, scaled = optimizer.scale_loss(scaled). Then optimizer.apply("
            "tape.gradient(scaled, weights), weights) and return loss.")
    several = _cpu_replicas()
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    # Float32 with a plain SGD: the replicas' gradients are summed.
    targets = _W0 + np.array([1, 3, -2, 4, 2, -1, 5, 1]) * 2.0**-12
    for strategy in (one, several):
        model, optimizer = _one_weight_model(strategy, policy="float32", loss_scale=False)
        update, losses = _run_step(replica_step, strategy, model, optimizer, targets,
                                   exercise, hint)
        expected, expected_losses = _expected(targets, strategy.num_replicas_in_sync)
        _compare_update(update, expected, exercise, hint, scaled=False,
                        replicas=strategy.num_replicas_in_sync)
        _compare_losses(losses, expected_losses, exercise, hint)
    # Float16: a residual of 2^-22 that float16 cannot hold next to w = 2^-10 (its spacing there
    # is 2^-20): a loss computed in float16 sees no error at all.
    _float16_case(replica_step, several, _W0 + np.ones(8) * 2.0**-22, exercise, hint,
                  precision=True)
    # Float16: residuals of k * 2^-30 give gradients of about 2^-31, below float16's smallest
    # number (2^-24): zero without the loss scale, exact with it (S = 2^15).
    targets = _W0 + np.array([1, 2, 3, 1, 2, 1, 3, 2]) * 2.0**-30
    _float16_case(replica_step, several, targets, exercise, hint, precision=False)
    passed("replica_step divides the loss by the replicas, scales it inside the tape, lets the "
           "LossScaleOptimizer unscale the gradients, and computes the loss in float32.")


def _float16_case(replica_step, strategy, targets, exercise, hint, *, precision):
    model, optimizer = _one_weight_model(strategy, policy="mixed_float16", loss_scale=True)
    update, losses = _run_step(replica_step, strategy, model, optimizer, targets, exercise, hint)
    expected, expected_losses = _expected(targets, strategy.num_replicas_in_sync)
    if precision and update == 0.0:
        fail(exercise, "the weight did not move although its gradient (about 2^-23) fits in "
             "float16: the loss was computed in float16, where the target 2^-10 + 2^-22 rounds "
             "to the output 2^-10 and the error vanishes. Cast the model's output to float32 "
             "before the loss (keras.losses.mean_squared_error casts the target to the "
             "output's float16 instead).", hint)
    _compare_update(update, expected, exercise, hint, scaled=True,
                    replicas=strategy.num_replicas_in_sync)
    _compare_losses(losses, expected_losses, exercise, hint)


# Exercise 2: the linear scaling rule.


def _number(value, exercise, what, hint):
    if value is None or isinstance(value, (str, bytes)):
        fail(exercise, f"{what} returned {value!r}, not a number.", hint)
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value), np.float64)
    except Exception:  # noqa: BLE001  (anything that is not a number)
        fail(exercise, f"{what} returned {type(value).__name__}, not a number.", hint)
    if array.size != 1:
        fail(exercise, f"{what} returned shape {array.shape}; expected one number.", hint)
    return float(array.reshape(()))


def check_scaled_learning_rate(scaled_learning_rate):
    """Exercise 2: `scaled_learning_rate(base_learning_rate, *, base_batch_size,
    per_replica_batch_size, replicas)` -> base * (per_replica * replicas) / base_batch."""
    exercise = "Exercise 2"
    hint = ("The global batch is per_replica_batch_size * replicas; the rate grows in proportion "
            "to it: base_learning_rate * global_batch / base_batch_size.")
    for base, base_batch, per_replica, replicas in ((0.1, 256, 128, 8), (2e-4, 64, 32, 2),
                                                    (0.05, 128, 256, 4)):
        value = _number(scaled_learning_rate(base, base_batch_size=base_batch,
                                             per_replica_batch_size=per_replica,
                                             replicas=replicas),
                        exercise, "scaled_learning_rate", hint)
        right = base * per_replica * replicas / base_batch
        mistakes = {
            "the rate grows with the square root of the batch: that is another rule "
            "(Krizhevsky, 2014); the linear rule of Goyal et al. multiplies by k = B / B0.":
                base * np.sqrt(per_replica * replicas / base_batch),
            "the replicas are left out: the rate must follow the global batch "
            "(per_replica_batch_size * replicas), which is what one update averages over.":
                base * per_replica / base_batch,
            "the ratio is upside down: a larger batch takes a larger rate, "
            "base * global_batch / base_batch_size.":
                base * base_batch / (per_replica * replicas),
            "the rate is multiplied by the number of replicas only: the ratio of the global "
            "batch to the base batch is what counts.": base * replicas,
            "the base rate came back unchanged: scale it by global_batch / base_batch_size.": base,
        }
        for problem, wrong in mistakes.items():
            if np.isclose(value, wrong, rtol=1e-6) and not np.isclose(wrong, right, rtol=1e-6):
                fail(exercise, problem, hint)
        if not np.isclose(value, right, rtol=1e-6):
            fail(exercise, f"for base rate {base}, base batch {base_batch}, {replicas} replicas "
                 f"of {per_replica} expected {right:.6g}; got {value:.6g}.", hint)
    passed("scaled_learning_rate follows the linear rule: k = global batch / base batch.")


# Exercise 3: the warm-up.


def _warmup_reference(steps, base, target, warmup_steps):
    """eta_t = eta_0 + (eta - eta_0) * min(t, T) / T, in float64."""
    steps = np.asarray(steps, np.float64)
    return base + (target - base) * np.minimum(steps, warmup_steps) / warmup_steps


def _warmup_values(warmup_learning_rate, steps, base, target, warmup_steps, exercise, hint):
    """The learner's rate at each step, called as an optimizer calls a schedule: with a tensor
    step, inside a compiled function."""
    @tf.function
    def rate(step):
        return warmup_learning_rate(step, base_learning_rate=base, target_learning_rate=target,
                                    warmup_steps=warmup_steps)

    values = []
    for step in steps:
        try:
            value = rate(tf.constant(step, tf.int64))
        except NotImplementedError:
            raise
        except (TypeError, tf.errors.OperatorNotAllowedInGraphError) as error:
            fail(exercise, f"with a tensor step inside a compiled function it raised "
                 f"{type(error).__name__}: {str(error)[:160]}. An optimizer calls its schedule "
                 "that way: use ops.minimum and ops.cast, not min() or `if`.", hint)
        values.append(_number(value, exercise, "warmup_learning_rate", hint))
    return np.array(values)


def check_warmup_learning_rate(warmup_learning_rate):
    """Exercise 3: `warmup_learning_rate(step, *, base_learning_rate, target_learning_rate,
    warmup_steps)` -> eta_0 + (eta - eta_0) * min(step, T) / T."""
    exercise = "Exercise 3"
    hint = ("fraction = ops.minimum(ops.cast(step, 'float32') / warmup_steps, 1.0); return "
            "base_learning_rate + (target_learning_rate - base_learning_rate) * fraction.")
    base, target, warmup_steps = 0.1, 0.8, 100
    steps = np.array([0, 1, 25, 50, 99, 100, 101, 150, 1000])
    values = _warmup_values(warmup_learning_rate, steps, base, target, warmup_steps,
                            exercise, hint)
    right = _warmup_reference(steps, base, target, warmup_steps)
    if np.allclose(values, right, rtol=1e-5):
        passed("warmup_learning_rate rises linearly from the base rate to the target over "
               "warmup_steps steps, then stays at the target.")
        return
    _name_warmup_mistake(values, right, steps, (base, target, warmup_steps), exercise, hint)


def _name_warmup_mistake(values, right, steps, setting, exercise, hint):
    base, target, warmup_steps = setting
    late, before = steps > warmup_steps, steps < warmup_steps
    if np.isclose(values[0], 0.0):
        fail(exercise, "the rate starts at 0: Goyal et al. start the warm-up at the base rate "
             "eta (the small batch's), and reach k eta after the warm-up.", hint)
    if np.allclose(values, target, rtol=1e-5):
        fail(exercise, "the rate is the target from step 0: there is no warm-up; a large rate "
             "straight away is what makes the first steps of a large batch diverge.", hint)
    if np.allclose(values, base, rtol=1e-5):
        fail(exercise, "the rate stays at the base rate: it must rise to the target.", hint)
    if np.any(values[late] > target * (1 + 1e-5)):
        fail(exercise, "the rate keeps growing after warmup_steps: cap the fraction at 1 "
             "(ops.minimum(step / warmup_steps, 1)).", hint)
    if np.any(values[late] < target * (1 - 1e-5)):
        fail(exercise, "after the warm-up the rate falls below the target: it must stay there.",
             hint)
    if np.allclose(values[before], base, rtol=1e-5):
        fail(exercise, "the rate jumps from the base rate to the target at the end of the "
             "warm-up: integer division (step // warmup_steps) is 0 until then. Divide as "
             "floats: ops.cast(step, 'float32') / warmup_steps.", hint)
    shifted = _warmup_reference(steps + 1, base, target, warmup_steps)
    if np.allclose(values, shifted, rtol=1e-5):
        fail(exercise, "the warm-up is one step ahead (step + 1): at step 0 the rate must be the "
             "base rate exactly.", hint)
    wrong = [f"step {s}: {v:.6g} (expected {r:.6g})" for s, v, r in zip(steps, values, right)
             if not np.isclose(v, r, rtol=1e-5)]
    fail(exercise, "not the linear warm-up; " + "; ".join(wrong[:3]) + ".", hint)


# Exercise 4: a pipeline that beats the naive one.

_IMAGES, _BATCH, _LOAD_SECONDS = 200, 32, 0.004


def slow_load(seconds=_LOAD_SECONDS):
    """Returns `load(pixels)`: waits `seconds` (standing for reading one image file from a slow
    disk), then returns the uint8 pixels as float32 in [0, 1]. Stateless, so tf.data may run it
    in parallel."""
    def wait(pixels):
        time.sleep(seconds)
        return pixels

    def load(pixels):
        waited = tf.numpy_function(wait, [pixels], pixels.dtype, stateful=False)
        return tf.cast(tf.ensure_shape(waited, pixels.shape), tf.float32) / 255.0

    return load


def _numbered_images():
    """Image i is filled with the number i, so each loaded image says which one it is."""
    return np.broadcast_to(np.arange(_IMAGES, dtype="uint8")[:, None, None, None],
                           (_IMAGES, 2, 2, 1)).copy()


def _read_pass(pipeline, exercise, hint):
    """Reads one pass: (the image numbers per batch, seconds); stops an endless dataset."""
    start, batches, seen = time.perf_counter(), [], 0
    try:
        for batch in pipeline:
            array = np.asarray(batch)
            if array.dtype != np.float32 or array.ndim != 4:
                fail(exercise, f"a batch has shape {array.shape} and dtype {array.dtype}; "
                     "expected float32 batches (batch, 2, 2, 1): map `load` over the images, "
                     "then batch.", hint)
            batches.append(np.rint(array[:, 0, 0, 0] * 255.0).astype(int))
            values = array[:, 0, 0, 0]
            if not np.allclose(values * 255.0, batches[-1], atol=1e-3):
                fail(exercise, "the images are not load(image): values like "
                     f"{values[:3]} are not pixels / 255. Apply `load` once to each image.", hint)
            seen += len(array)
            if seen > 2 * _IMAGES:
                fail(exercise, "one pass gave more images than there are: a repeat() makes the "
                     "dataset endless; fit(epochs=...) starts each epoch itself.", hint)
    except NotImplementedError:
        raise
    except tf.errors.OpError as error:
        fail(exercise, f"reading the dataset raised {type(error).__name__}: "
             f"{str(error)[:200]}", hint)
    return batches, time.perf_counter() - start


def _make_pipeline(fast_pipeline, seed, exercise, hint):
    try:
        pipeline = fast_pipeline(_numbered_images(), load=slow_load(), batch_size=_BATCH, seed=seed)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001  (tf.data raises its own error classes)
        fail(exercise, f"fast_pipeline raised {type(error).__name__}: {str(error)[:200]}", hint)
    if not isinstance(pipeline, tf.data.Dataset):
        fail(exercise, f"fast_pipeline returned {type(pipeline).__name__}; return the "
             "tf.data.Dataset itself.", hint)
    return pipeline


def _transformations(pipeline):
    """The class names of a dataset's transformations, last first (TensorFlow's own classes)."""
    names = []
    while pipeline is not None:
        names.append(type(pipeline).__name__.lstrip("_"))
        pipeline = getattr(pipeline, "_input_dataset", None)
    return names


def _check_pass(batches, exercise, hint):
    sizes = [len(batch) for batch in batches]
    if any(size != _BATCH for size in sizes[:-1]) or not 0 < sizes[-1] <= _BATCH:
        fail(exercise, f"the batch sizes are {sizes}; expected batches of {_BATCH} (the last "
             "one may be smaller): batch(batch_size) once, after shuffling.", hint)
    order = np.concatenate(batches)
    if len(order) < _IMAGES:
        fail(exercise, f"a pass gave {len(order)} of the {_IMAGES} images: drop_remainder=True "
             "(or a take()) drops some. Keep every image in each epoch.", hint)
    if sorted(order.tolist()) != list(range(_IMAGES)):
        fail(exercise, "a pass does not give every image exactly once: some repeat, others are "
             "missing.", hint)
    return order


def _check_epochs_differ(first, second, first_batches, second_batches, exercise, hint):
    if np.array_equal(first, np.arange(_IMAGES)):
        fail(exercise, "the images come in their stored order: shuffle them every epoch "
             "(shuffle(len(images), seed=seed)).", hint)
    if np.array_equal(first, second):
        fail(exercise, "both epochs give the images in the same order: cache() after shuffle() "
             "stores one shuffled order (or reshuffle_each_iteration=False). Cache the loaded "
             "images, then shuffle.", hint)
    if sorted(map(sorted, map(list, first_batches))) == sorted(map(sorted, map(list,
                                                                               second_batches))):
        fail(exercise, "both epochs give the same batches, only in another order: cache() after "
             "batch() fixes which images share a batch. Shuffle the images, then batch.", hint)


def _check_shuffle(first, again, other, exercise, hint):
    if first[:_BATCH].max() < _IMAGES // 2:
        fail(exercise, "the first batch holds only images from the start of the data: the "
             "shuffle buffer is too small to mix the whole set. Use shuffle(len(images), ...).",
             hint)
    if not np.array_equal(first, again):
        fail(exercise, "two pipelines made with the same seed give different orders: the "
             "shuffle is not seeded. Pass seed=seed to shuffle.", hint)
    if np.array_equal(first, other):
        fail(exercise, "seeds 0 and 1 give the same order: the seed argument is ignored (a "
             "fixed seed inside the function?).", hint)


def check_fast_pipeline(fast_pipeline):
    """Exercise 4: `fast_pipeline(images, *, load, batch_size, seed)` -> a tf.data.Dataset of
    batches of load(image), reshuffled every epoch, faster than the naive pipeline."""
    exercise = "Exercise 4"
    hint = ("from_tensor_slices(images).map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()"
            ".shuffle(len(images), seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)")
    pipeline = _make_pipeline(fast_pipeline, 0, exercise, hint)
    first_batches, _ = _read_pass(pipeline, exercise, hint)
    first = _check_pass(first_batches, exercise, hint)
    second_batches, seconds = _read_pass(pipeline, exercise, hint)
    second = _check_pass(second_batches, exercise, hint)
    _check_epochs_differ(first, second, first_batches, second_batches, exercise, hint)
    again = _check_pass(_read_pass(_make_pipeline(fast_pipeline, 0, exercise, hint),
                                   exercise, hint)[0], exercise, hint)
    other = _check_pass(_read_pass(_make_pipeline(fast_pipeline, 1, exercise, hint),
                                   exercise, hint)[0], exercise, hint)
    _check_shuffle(first, again, other, exercise, hint)
    _check_speed(pipeline, seconds, exercise, hint)
    passed("fast_pipeline loads each image once, reshuffles every epoch with its seed, and its "
           f"second epoch is {_naive_seconds() / seconds:.0f} times as fast as the naive one's.")


_NAIVE = {}


def _naive_seconds():
    """Seconds of the naive pipeline's second pass (map(load) -> batch), measured once."""
    if "seconds" not in _NAIVE:
        naive = tf.data.Dataset.from_tensor_slices(_numbered_images()).map(slow_load())
        naive = naive.batch(_BATCH)
        for _ in naive:  # The first pass: the same work as the second, untimed.
            pass
        start = time.perf_counter()
        for _ in naive:
            pass
        _NAIVE["seconds"] = time.perf_counter() - start
    return _NAIVE["seconds"]


def _check_speed(pipeline, seconds, exercise, hint):
    names = _transformations(pipeline)
    maps = [i for i, name in enumerate(names) if "MapDataset" in name]
    caches = [i for i, name in enumerate(names) if "Cache" in name]
    if caches and maps and min(caches) > max(maps):  # Listed last first: the cache is below.
        fail(exercise, "cache() comes before map(load): it keeps the raw pixels, and the slow "
             "load runs again every epoch. Cache after the map.", hint)
    if not caches or seconds > _naive_seconds() / 3:
        fail(exercise, f"the second epoch took {seconds:.2f} s, the naive pipeline's "
             f"{_naive_seconds():.2f} s: each epoch loads every image again. cache() after "
             "map(load) keeps the loaded images in memory.", hint)
    if not any("ParallelMap" in name for name in names):
        fail(exercise, "map(load) runs one image at a time: pass num_parallel_calls="
             "tf.data.AUTOTUNE so that the first epoch loads several images at once.", hint)
    outermost = [name for name in names if "Options" not in name][:1]
    if "Prefetch" not in "".join(outermost):
        fail(exercise, "the dataset does not end in prefetch: without it the next batch is "
             "prepared only when the step asks for it. End with prefetch(tf.data.AUTOTUNE).",
             hint)


__all__ = ["check_fast_pipeline", "check_replica_step", "check_scaled_learning_rate",
           "check_warmup_learning_rate", "slow_load"]
