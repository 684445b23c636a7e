"""Training at scale: which devices to train on, in which precision, and the one line every
custom `train_step` of the course needs to stay correct on several replicas and in float16.

- `choose_strategy`: TPU -> MultiWorkerMirroredStrategy (a cluster in TF_CONFIG) ->
  MirroredStrategy (several GPUs) -> one GPU -> the CPU.
- `choose_precision` / `set_precision`: mixed_float16 on GPUs with tensor cores,
  mixed_bfloat16 on TPUs and on CPUs with bfloat16 instructions, float32 otherwise.
- `scaled_loss`: the loss a replica differentiates: divided by the number of replicas (their
  gradients are summed) and multiplied by the loss scale of a `LossScaleOptimizer`.
- `split_cpu`: several logical CPU devices, to run `MirroredStrategy` without a GPU.
Explained in notebooks/09_training_at_scale.ipynb.
"""

import json
import os

import keras
import tensorflow as tf
from keras import ops

from dgm_course._validation import describe, require_int

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def split_cpu(n=2):
    """Splits the CPU into `n` logical devices, so `MirroredStrategy` can run on a laptop.

    TensorFlow fixes its devices when it first runs an operation, so call this first in a
    fresh process (before any model is built or tensor created). Calling it again with the same
    `n` does nothing.

    Args:
        n: how many logical CPU devices (2 or more).

    Returns:
        The names of the logical CPU devices, e.g. ['/device:CPU:0', '/device:CPU:1'].

    Raises:
        RuntimeError: if TensorFlow already started with a different number of CPU devices.
    """
    n = require_int(n, "n", minimum=2)
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as error:  # Devices are fixed once TensorFlow has run an operation.
        found = len(tf.config.list_logical_devices("CPU"))
        if found != n:
            raise RuntimeError(
                f"TensorFlow already started with {found} logical CPU device(s), so it cannot "
                f"split the CPU into {n} now ({error}). Restart the kernel and call "
                f"split_cpu({n}) before building any model or creating any tensor.") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _tpu_resolver():
    """A connected TPU's cluster resolver, or None where there is no TPU."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
        return None


def _cluster_configured():
    """True if TF_CONFIG names a cluster of more than one worker."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); got "
                         f"{os.environ['TF_CONFIG'][:80]!r}. Unset it or fix it.") from None
    return sum(len(tasks) for tasks in cluster.values()) > 1


_STRATEGIES = {}  # One strategy per kind and device list for the whole process.


def _once(key, make):
    """Returns the strategy made by `make()` the first time `key` was asked for in this process.

    A second MirroredStrategy over the same devices starts its collective keys where the first
    one did, and its first all-reduce fails with "Shape mismatch in the collective instance
    100" (tensorflow/tensorflow#62790; TensorFlow's own tests raise a private key base to
    avoid it); a second MultiWorkerMirroredStrategy raises "Collective ops are already
    configured". So a re-run notebook cell gets the strategy it made the first time.
    """
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make()
    return _STRATEGIES[key]


def choose_strategy(*, cpu_replicas=False, tpu=True):
    """Returns the `tf.distribute.Strategy` for this machine, in the order of preference:

    1. a TPU (Colab's TPU runtime): `TPUStrategy`;
    2. a cluster of workers described in the TF_CONFIG variable: `MultiWorkerMirroredStrategy`;
    3. two or more GPUs: `MirroredStrategy` over all of them;
    4. one GPU: `OneDeviceStrategy("/gpu:0")`;
    5. no GPU: `MirroredStrategy` over the logical CPUs if `cpu_replicas` is True and
       `split_cpu` made more than one, else `OneDeviceStrategy("/cpu:0")`.

    Build and compile the model inside `with strategy.scope():`; `fit` then splits each global
    batch over the replicas. A mirrored strategy is made once per process: asked again, this
    returns the same one (a second one over the same devices would crash, tensorflow#62790).
    Explained in notebooks/09_training_at_scale.ipynb, section "Data-parallel training".

    Args:
        cpu_replicas: on a machine without GPUs, mirror over the logical CPU devices (to test
            data-parallel code on a laptop; it is not faster).
        tpu: look for a TPU first (set False to skip the few seconds the lookup can take).
    """
    if tpu and (resolver := _tpu_resolver()) is not None:
        return tf.distribute.TPUStrategy(resolver)
    if _cluster_configured():
        return _once("multi_worker", tf.distribute.MultiWorkerMirroredStrategy)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        devices = tuple(gpu.name for gpu in gpus)
        return _once(devices, lambda: tf.distribute.MirroredStrategy(list(devices)))
    if gpus:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    cpus = tf.config.list_logical_devices("CPU")
    if cpu_replicas and len(cpus) > 1:
        devices = tuple(cpu.name for cpu in cpus)
        return _once(devices, lambda: tf.distribute.MirroredStrategy(list(devices)))
    return tf.distribute.OneDeviceStrategy(cpus[0].name)


def describe_strategy(strategy):
    """Returns one line: the strategy's class, its number of replicas and their devices."""
    devices = getattr(strategy.extended, "worker_devices", ())
    return (f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s)"
            + (f" on {', '.join(devices)}" if devices else ""))


def _cpu_has_bfloat16():
    """True if the CPU advertises bfloat16 arithmetic (AVX512_BF16 or AMX on x86, BF16 on Arm)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:  # Not Linux: say no rather than guess.
        return False
    return any(flag in flags for flag in (" avx512_bf16", " amx_bf16", " bf16"))


def choose_precision(strategy=None):
    """Returns the dtype policy name that suits the devices `strategy` trains on.

    - "mixed_float16" on NVIDIA GPUs with tensor cores (compute capability 7.0 or higher:
      V100, T4, A100, ...): float16 matrix products, float32 weights, loss scaling;
    - "mixed_bfloat16" on TPUs and on CPUs with bfloat16 instructions: bfloat16 has float32's
      range, so no loss scaling;
    - "float32" everywhere else (older GPUs gain nothing from float16).

    Explained in notebooks/09_training_at_scale.ipynb, section "Mixed precision".

    Args:
        strategy: a `tf.distribute.Strategy` (default: the current one).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability",
                                                                           (0, 0))
                        for gpu in gpus]
        return "mixed_float16" if min(capabilities) >= (7, 0) else "float32"
    return "mixed_bfloat16" if _cpu_has_bfloat16() else "float32"


def use_xla(strategy=None):
    """Returns whether to compile the train step with XLA (`compile(jit_compile=...)`) here:
    True on GPUs and TPUs, False on the CPU.

    XLA fuses a step's operations into fewer, larger kernels: on a GPU that saves kernel
    launches and memory traffic between them, and TPUs run nothing but XLA. On this course's
    2-core CPU it was measured to slow the DCGAN step down (`benchmarks/training_speed.py`;
    `benchmarks/train_step_speed.py`: 772 images/s with XLA against 966 without), so it stays
    off there. Explained in notebooks/09_training_at_scale.ipynb, section "XLA".

    Args:
        strategy: a `tf.distribute.Strategy` (default: the current one).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    return bool(tf.config.list_logical_devices("GPU"))


def set_precision(policy):
    """Sets Keras's global dtype policy: layers built afterwards compute in it.

    Under a mixed policy a layer keeps float32 weights and computes in float16 or bfloat16; the
    course's models compute their losses in float32 and, under "mixed_float16", the GAN and VAE
    `compile` wrap their optimizers in a `keras.optimizers.LossScaleOptimizer`. Call it after
    `environment.set_seed`: that clears Keras's session, policy included, back to float32.

    Args:
        policy: "float32", "mixed_float16" or "mixed_bfloat16" (e.g. from `choose_precision`).

    Returns:
        The policy's name.

    Raises:
        ValueError: for any other name (the global policy is then left as it was).
    """
    if policy not in POLICIES:
        hint = (" Keras's plain 'float16' and 'bfloat16' policies would also store the weights "
                "in 16 bits, where small updates round away; the mixed ones keep them in float32."
                if policy in ("float16", "bfloat16") else "")
        raise ValueError(f"`policy` must be one of {', '.join(map(repr, POLICIES))}; got "
                         f"{describe(policy)}. Pass choose_precision()'s answer, or 'float32' "
                         f"to train without mixed precision.{hint}")
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def build_optimizers(model, **networks):
    """Inside a `strategy.scope()`, creates each optimizer's variables now, for
    `model.<optimizer>` and `model.<network>` named in `networks` (e.g.
    d_optimizer="discriminator"), if the network is built. Outside one it does nothing.

    Keras builds the optimizer of a plain `compile(optimizer=...)` itself; the GANs' two
    optimizers it does not know. Built lazily in the first step under a `MirroredStrategy`,
    their variables would be created inside a replica, which fails; built in `compile`,
    inside `strategy.scope()`, they are mirrored like the weights. Without a strategy they
    stay lazy, as in chapters 03 to 08 (an exercise check applies an optimizer to the other
    player's weights on purpose, to name that mistake, which a built optimizer would refuse).
    """
    if not tf.distribute.has_strategy():
        return
    for optimizer_name, network_name in networks.items():
        optimizer, network = getattr(model, optimizer_name), getattr(model, network_name)
        if network.built and not optimizer.built and network.trainable_weights:
            optimizer.build(network.trainable_weights)


def loss_scale_optimizer(optimizer):
    """Returns `optimizer` wrapped in a `LossScaleOptimizer` if the global dtype policy is
    mixed_float16 (and it is not wrapped yet); otherwise `optimizer` itself.

    Float16's smallest normal number is about 6e-5, and small gradients flush to zero. The
    wrapper multiplies the loss by a large scale S before backpropagation (`scaled_loss`),
    divides the gradients by S before the update, and halves S whenever they overflow (that
    step is skipped), doubling it again after 2,000 finite steps.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"Expected a keras.optimizers.Optimizer, e.g. keras.optimizers.Adam(2e-4); "
                        f"got {describe(optimizer)}.")
    if (keras.mixed_precision.dtype_policy().name == "mixed_float16"
            and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
        return ReplicaSafeLossScaleOptimizer(optimizer)
    return optimizer


@keras.saving.register_keras_serializable(package="dgm_course")
class ReplicaSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A `keras.optimizers.LossScaleOptimizer` whose replicas agree on skipping a step.

    Keras 3.15's optimizer decides "are the gradients finite?" from each replica's own
    gradients. If only one replica overflows, the others go on to apply the summed, infinite
    gradients (the weights become inf or NaN) and the scale is not halved. Here the replicas
    first add up their counts of non-finite gradient entries; if any replica has one, every
    replica's gradients become NaN, so all of them skip the step and halve the scale together.
    With one replica it is exactly `LossScaleOptimizer`. Explained in
    notebooks/09_training_at_scale.ipynb, section "Mixed precision".
    """

    def apply(self, grads, trainable_variables=None):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            grads = list(grads)
            local = [ops.sum(ops.cast(ops.logical_not(ops.isfinite(g)), "float32"))
                     for g in grads if g is not None]
            # bad = number of non-finite entries over all replicas  # scalar
            bad = context.all_reduce(tf.distribute.ReduceOp.SUM, ops.sum(ops.stack(local)))
            poison = ops.where(bad > 0, float("nan"), 0.0)  # g + NaN is NaN, g + 0 is g.
            grads = [None if g is None else g + ops.cast(poison, g.dtype) for g in grads]
        return super().apply(grads, trainable_variables)


def replica_random(sample, shape, *, seed, **kwargs):
    """Returns `sample(shape, seed=seed, **kwargs)`, different on each replica.

    Under a `MirroredStrategy` every replica runs the same `train_step` with the same
    `SeedGenerator` state, so `keras.random.normal(shape, seed=generator)` would give every
    replica the *same* noise: two replicas would train on one set of fakes twice. Here the R
    replicas draw R times the shape with the shared seed and each keeps its own slice. With one
    replica (or outside a replica context) this is exactly `sample(shape, seed=seed)`.
    Explained in notebooks/09_training_at_scale.ipynb, section "Data-parallel training".

    Args:
        sample: a Keras sampler such as `keras.random.normal` or `keras.random.uniform`.
        shape: the shape one replica needs (its entries may be tensors, e.g. the batch size).
        seed: an int or a `keras.random.SeedGenerator`.
        **kwargs: passed to `sample` (e.g. dtype).
    """
    context = tf.distribute.get_replica_context()
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if context is None or replicas == 1:
        return sample(shape, seed=seed, **kwargs)
    draws = sample((replicas, *shape), seed=seed, **kwargs)  # (R, *shape)
    return ops.take(draws, context.replica_id_in_sync_group, axis=0)  # this replica's slice


def scaled_loss(loss, optimizer):
    """Returns the loss one replica differentiates: loss / replicas, times the loss scale.

    Call it inside the `GradientTape`, then pass the gradients to `optimizer.apply`:

        with tf.GradientTape() as tape:
            loss = ...                                  # mean over this replica's batch
            scaled = scaled_loss(loss, optimizer)
        optimizer.apply(tape.gradient(scaled, weights), weights)

    - With R replicas each sees global_batch / R examples and `optimizer.apply` *sums* their
      gradients, so each replica's mean is divided by R: the sum is then the gradient of the
      mean over the global batch.
    - A `keras.optimizers.LossScaleOptimizer` divides the gradients by its scale S in `apply`,
      so the loss is multiplied by S here; any other optimizer applies them as they are.
    Explained in notebooks/09_training_at_scale.ipynb, section "A train_step that scales".

    Args:
        loss: a scalar tensor, the mean loss over this replica's batch.
        optimizer: the optimizer that will apply the gradients.
    """
    loss = ops.cast(loss, "float32")
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss / replicas  # The replicas' gradients are summed.
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        loss = optimizer.scale_loss(loss)  # S * loss; apply() divides the gradients by S.
    return loss


__all__ = ["POLICIES", "ReplicaSafeLossScaleOptimizer", "build_optimizers", "choose_precision",
           "choose_strategy", "describe_strategy", "loss_scale_optimizer", "replica_random",
           "scaled_loss", "set_precision", "split_cpu", "use_xla"]
