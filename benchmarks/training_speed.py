"""Measures the images per second each course model trains on under each way of running its
train_step, and prints a Markdown table headed by the machine it ran on.

Rows: dcgan (gan.GAN, dcgan networks), wgan-gp (wgan.WGAN, n_critic=5: one train_step is five
critic steps and one generator step), vae (vae.VAE, conv_vae networks, Bernoulli), cgan and acgan
(with the moving average of chapter 08) and cvae; 28x28x1 images, each model at the width its
notebook uses in the cpu profile (`--width` sets one width for all). Columns:

- eager loop: `model.train_step(batch)` called from Python, no tf.function;
- compiled: `fit()`, the step traced once into a graph, steps_per_execution=1;
- steps_per_execution=8: `fit()` runs 8 steps per call into the graph;
- mixed precision: the policy `accelerate.choose_precision()` picks (mixed_bfloat16 on a CPU
  with bfloat16 instructions, mixed_float16 on a GPU with tensor cores), or `--precision`;
- XLA: `compile(jit_compile=True)` ("refused" and the reason if Keras or XLA will not);
- 2 replicas: `MirroredStrategy` over 2 logical CPUs (`accelerate.split_cpu(2)`) or 2 GPUs,
  the global batch unchanged (each replica takes half); "needs 2 devices" on one GPU.

Each cell runs in a fresh Python process (the CPU split and the dtype policy are fixed per
process) on the same seeded inputs: random images of the right shape (a step costs the same on
any pixels) unless `--data-dir` holds MNIST and Fashion-MNIST. A cell is the best of
`--repeats` rounds of `--steps` steps after untimed warm-up steps (tracing, compiling):
images/s = batch size x steps / seconds. These are timings, not results: they vary by a few
percent between runs, more on a machine busy with other work (the header gives its load).

Usage:
    python benchmarks/training_speed.py [--models dcgan,vae] [--settings eager,compiled]
        [--steps 8] [--repeats 3] [--warmup 5] [--batch-size 128] [--width 64]
        [--precision mixed_float16] [--data-dir ../shared/data] [--save] [--quick]
    (about 8 minutes for the whole table on 2 CPU cores; --quick: seconds per cell, tiny
    models, numbers meaningless: a smoke test)

On Colab: Runtime > Change runtime type > a GPU (T4), then in a code cell:
    !git clone -q https://github.com/dgm-course/dgm-course
    !cd dgm-course && python benchmarks/training_speed.py --save
and download dgm-course/benchmarks/results/training_speed_<gpu>.md (the Files pane).
`--save` writes benchmarks/results/training_speed_<device>.md and .json (<device>: cpu or the
first GPU's name).
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("dcgan", "wgan-gp", "vae", "cgan", "acgan", "cvae")
# The width of each model in the notebooks' cpu profile (04: 32, 05: 16, 07: 16, 08: 32).
WIDTHS = {"dcgan": 32, "wgan-gp": 16, "vae": 16, "cgan": 32, "acgan": 32, "cvae": 32}
SETTINGS = {"eager": "eager loop", "compiled": "compiled", "spe8": "steps_per_execution=8",
            "mixed": "mixed precision", "xla": "XLA", "replicas2": "2 replicas"}
RESULT_TAG = "RESULT "  # A worker's answer: this tag and one JSON object on one line.


def _gan(name, width, seed):
    """The GAN `name` with the networks, latent size and seed of its notebook (04, 05, 08)."""
    from dgm_course import conditional, conditional_gan, dcgan, gan, wgan

    generator = dcgan.build_generator(latent_dim=64, width=width)
    if name == "dcgan":
        return gan.GAN(generator, dcgan.build_discriminator(width=width), latent_dim=64,
                       seed=seed)
    if name == "wgan-gp":
        return wgan.WGAN(generator, dcgan.build_critic(width=width), latent_dim=64, n_critic=5,
                         seed=seed)
    model, discriminator = {
        "cgan": (conditional_gan.ConditionalGAN, conditional.build_conditional_discriminator),
        "acgan": (conditional_gan.ACGAN, conditional.build_auxiliary_discriminator)}[name]
    return model(conditional.build_conditional_generator(latent_dim=64, width=width),
                 discriminator(width=width), latent_dim=64, num_classes=10, seed=seed, ema=0.999)


def _vae(name, width, seed):
    """The VAE `name` with the networks, latent size and likelihood of notebooks 07 and 08."""
    from dgm_course import conditional_vae, conv_vae, vae

    if name == "vae":
        return vae.VAE(conv_vae.build_encoder(latent_dim=16, width=width),
                       conv_vae.build_decoder(16, likelihood="bernoulli", width=width),
                       likelihood="bernoulli", seed=seed)
    return conditional_vae.ConditionalVAE(
        conditional_vae.build_conditional_encoder(latent_dim=16, width=width),
        conditional_vae.build_conditional_decoder(latent_dim=16, width=width),
        num_classes=10, likelihood="bernoulli", seed=seed)


def build_model(name, *, width, seed, **compile_kwargs):
    """Returns the course model `name` (one of MODELS), compiled with its notebook's optimizers
    and `compile_kwargs` (e.g. jit_compile, steps_per_execution)."""
    import keras

    keras.utils.set_random_seed(seed)  # The initial weights.
    if name in ("vae", "cvae"):
        model = _vae(name, width, seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
    else:
        model = _gan(name, width, seed)
        beta_2 = 0.9 if name == "wgan-gp" else 0.999  # Gulrajani et al.'s, as in chapter 05.
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=beta_2),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=beta_2),
                      **compile_kwargs)
    return model


def training_arrays(name, *, n, seed, data_dir):
    """Returns `n` training images for model `name` (and labels for the conditional models):
    [-1, 1] for the GANs, [0, 1] for the VAEs; random unless `data_dir` holds the data."""
    import numpy as np

    value_range = (0.0, 1.0) if name in ("vae", "cvae") else (-1.0, 1.0)
    rng = np.random.default_rng(seed)
    if data_dir:
        from dgm_course import data, preprocessing

        dataset = data.load_dataset("fashion_mnist" if name in ("dcgan", "wgan-gp") else "mnist",
                                    data_dir=data_dir, download=False, fallback=False,
                                    verbose=False)
        images = preprocessing.normalize(dataset.x_train[:n], value_range=value_range)
        labels = dataset.y_train[:n].astype("int32")
    else:
        images = rng.uniform(*value_range, (n, 28, 28, 1)).astype("float32")
        labels = rng.integers(0, 10, n).astype("int32")
    return (images, labels) if name in ("cgan", "acgan", "cvae") else (images,)


def fit_rounds(model, arrays, *, batch_size, warmup, rounds, steps):
    """Runs `fit()` for warmup + rounds * steps steps; returns each round's seconds, read from
    the clock at the end of every call into the graph (each covers steps_per_execution steps)."""
    import keras
    import tensorflow as tf

    per_call = model.steps_per_execution
    stamps = []

    def stamp(batch, logs):
        float(next(iter(logs.values())))  # Waits for the device to finish the call.
        stamps.append(time.perf_counter())

    dataset = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0])
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)
    model.fit(dataset, steps_per_epoch=warmup + rounds * steps, epochs=1, verbose=0,
              shuffle=False, callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=stamp)])
    ends = [stamps[(warmup + r * steps) // per_call - 1] for r in range(rounds + 1)]
    return [later - earlier for earlier, later in itertools.pairwise(ends)]


def eager_rounds(model, arrays, *, batch_size, warmup, rounds, steps):
    """Calls `model.train_step` from a Python loop (no tf.function); returns each round's
    seconds after `warmup` untimed steps."""
    import tensorflow as tf

    batches = [tuple(tf.constant(a[i:i + batch_size]) for a in arrays)
               for i in range(0, len(arrays[0]) - batch_size + 1, batch_size)]
    batches = [b if len(b) > 1 else b[0] for b in batches]
    seconds, step = [], 0
    for round_ in range(-1, rounds):
        start = time.perf_counter()
        for _ in range(warmup if round_ < 0 else steps):
            logs = model.train_step(batches[step % len(batches)])
            step += 1
        float(next(iter(logs.values())))  # Waits for the device.
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def prepare(setting, precision):
    """Sets up this process for `setting` before TensorFlow runs anything; returns
    (strategy or None, dtype policy, reason the setting cannot run here or None)."""
    import tensorflow as tf

    from dgm_course import accelerate

    if setting == "replicas2":
        if not tf.config.list_physical_devices("GPU"):
            accelerate.split_cpu(2)
        strategy = accelerate.choose_strategy(cpu_replicas=True, tpu=False)
        if strategy.num_replicas_in_sync < 2:
            return None, "float32", "needs 2 devices: this machine has one GPU"
        return strategy, "float32", None
    policy = "float32"
    if setting == "mixed":
        policy = precision or accelerate.choose_precision()
        if policy == "float32":
            return None, policy, ("n/a: accelerate.choose_precision() picks float32 here "
                                  "(no fast float16 or bfloat16); force one with --precision")
    accelerate.set_precision(policy)
    return None, policy, None


def measure(name, setting, args, strategy):
    """Returns images/s of each timed round of model `name` under `setting`, or raises."""
    steps_per_execution = 8 if setting == "spe8" else 1
    steps = -(-args.steps // steps_per_execution) * steps_per_execution  # A multiple of it.
    warmup = -(-args.warmup // steps_per_execution) * steps_per_execution
    arrays = training_arrays(name, n=16 * args.batch_size, seed=args.seed, data_dir=args.data_dir)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(name, width=args.width or WIDTHS[name], seed=args.seed,
                            jit_compile=setting == "xla",
                            steps_per_execution=steps_per_execution)
    if setting == "xla" and not model.jit_compile:
        raise RuntimeError("refused: Keras turned jit_compile off (a layer has "
                           "supports_jit=False, or op determinism is enabled)")
    run = eager_rounds if setting == "eager" else fit_rounds
    seconds = run(model, arrays, batch_size=args.batch_size, warmup=warmup, rounds=args.repeats,
                  steps=steps)
    return [args.batch_size * steps / s for s in seconds]


def worker(args):
    """Measures each (model, setting) in `args` in this process; prints one RESULT line each."""
    import tensorflow as tf

    (setting,) = args.settings  # One setting per process: it fixes devices and dtype policy.
    strategy, policy, reason = prepare(setting, args.precision)
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    for name in args.models:
        result = {"model": name, "setting": setting, "policy": policy, "gpus": gpus,
                  "width": args.width or WIDTHS[name], "note": reason}
        if reason is None:
            try:
                rates = measure(name, setting, args, strategy)
                result.update(images_per_second=max(rates), rounds=rates)
            except Exception as error:  # noqa: BLE001  (Into the table: the other cells go on.)
                text = (str(error).strip() or type(error).__name__).splitlines()[0]
                kind = "refused" if setting == "xla" else "failed"
                result["note"] = (text if text.startswith(kind)
                                  else f"{kind}: {type(error).__name__}: {text}")[:300]
        print(RESULT_TAG + json.dumps(result), flush=True)


def run_cell(name, setting, args):
    """Runs one (model, setting) measurement in a fresh Python process; returns its result."""
    command = [sys.executable, __file__, "--worker", "--models", name, "--settings", setting,
               "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed)]
    for flag, value in (("--width", args.width), ("--precision", args.precision),
                        ("--data-dir", args.data_dir)):
        command += [flag, str(value)] if value else []
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                              check=False)  # A crash becomes a note in the table.
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_TAG)]
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    except subprocess.TimeoutExpired:
        lines, error = [], f"timed out after {args.timeout} s"
    result = (json.loads(lines[0][len(RESULT_TAG):]) if lines
              else {"model": name, "setting": setting, "note": f"failed: {error}"[:300]})
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def machine(results, load):
    """Returns the facts that qualify the numbers: CPU, cores, GPUs, versions, date, and the
    load average (1 min) before and after the run (other work slows every cell)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read(), re.MULTILINE).group(1)
    except (OSError, AttributeError):  # Not Linux: keep platform's answer.
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "gpus": next((r["gpus"] for r in results if "gpus" in r), []),
            "python": platform.python_version(),
            **{package: importlib.metadata.version(package) for package in ("tensorflow", "keras")},
            "date": datetime.date.today().isoformat(), "load_average": load,
            "minutes": round(sum(r["seconds"] for r in results) / 60, 1)}


def header(facts, results, args):
    """Returns the lines above the table: the machine and how the cells were measured."""
    policy = next((r["policy"] for r in results if r["setting"] == "mixed"), "-")
    data = f"images from {args.data_dir}" if args.data_dir else "random images"
    before, after = facts["load_average"]
    hardware = (f"- CPU: {facts['cpu']}, {facts['cores']} cores ({facts['usable_cores']} "
                f"usable); GPUs: {', '.join(facts['gpus']) or 'none'}")
    software = (f"- TensorFlow {facts['tensorflow']}, Keras {facts['keras']}, Python "
                f"{facts['python']}; {facts['date']}; load average {before:.1f} before, "
                f"{after:.1f} after; {facts['minutes']} min in all")
    method = (f"- batch {args.batch_size} (global), 28x28x1 {data}; best of {args.repeats} "
              f"rounds of {args.steps} steps after {args.warmup} warm-up steps (rounded up to "
              f"multiples of 8 for steps_per_execution=8); mixed precision: {policy}")
    meaning = ("- images/s = batch size x train_steps / seconds; a wgan-gp step is 5 critic "
               "steps and 1 generator step. These are timings: expect some noise between runs.")
    return ["## Training speed: images per second (higher is better)", "",
            hardware, software, method, meaning, ""]


def markdown(facts, results, args):
    """Returns the table (a row per model, a column per setting, images/s) with `header`
    above it and, below it, the reason for every cell without a number."""
    settings = [setting for setting in SETTINGS if setting in args.settings]
    lines = header(facts, results, args) + [
        "| model | width | " + " | ".join(SETTINGS[s] for s in settings) + " |",
        "|---|---:|" + "---:|" * len(settings)]
    cells, notes = {(r["model"], r["setting"]): r for r in results}, []
    for name in args.models:
        row = [name, str(args.width or WIDTHS[name])]
        for setting in settings:
            result = cells[name, setting]
            if "images_per_second" in result:
                row.append(f"{result['images_per_second']:,.0f}")
            else:
                notes.append(f"[{len(notes) + 1}] {name}, {SETTINGS[setting]}: {result['note']}")
                row.append(f"{result['note'].split(':')[0]} [{len(notes)}]")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def save(text, facts, results, args):
    """Writes the table to benchmarks/results/training_speed_<device>.md and .json."""
    device = facts["gpus"][0] if facts["gpus"] else "cpu"
    stem = "training_speed_" + re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    folder = ROOT / "benchmarks" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(text)
    config = {key: getattr(args, key) for key in ("models", "settings", "steps", "repeats",
                                                  "warmup", "batch_size", "width", "seed",
                                                  "precision", "data_dir")}
    (folder / f"{stem}.json").write_text(json.dumps(
        {"machine": facts, "config": config, "results": results}, indent=1) + "\n")
    return folder / f"{stem}.md"


def _names(known):
    """An argparse type: a comma-separated list of names, each one of `known`."""
    def names(text):
        found = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in found if name not in known]
        if unknown or not found:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected names from "
                                             f"{','.join(known)}, separated by commas")
        return found
    return names


def parse(argv):
    """Returns the parsed command line; --quick shrinks everything for a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=_names(MODELS), default=list(MODELS),
                        help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--settings", type=_names(SETTINGS), default=list(SETTINGS),
                        help=f"comma-separated, from {','.join(SETTINGS)}")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per cell")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, help="one width for every model")
    parser.add_argument("--precision", choices=("mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--data-dir", default=os.environ.get("DGM_DATA_DIR"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.warmup, args.batch_size, args.width = 1, 1, 1, 8, 4
    if min(args.steps, args.repeats, args.warmup, args.batch_size, args.width or 1) < 1:
        parser.error("--steps, --repeats, --warmup, --batch-size and --width must be >= 1")
    return args


def main(argv=None):
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    load_before, results = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, []
    for setting in [setting for setting in SETTINGS if setting in args.settings]:
        for name in args.models:
            result = run_cell(name, setting, args)
            speed = result.get("images_per_second")
            print(f"{name:8} {SETTINGS[setting]:22} "
                  f"{f'{speed:8,.0f} images/s' if speed else result['note']} "
                  f"({result['seconds']} s)", file=sys.stderr, flush=True)
            results.append(result)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    facts = machine(results, (load_before, load_after))
    text = markdown(facts, results, args)
    print(text)
    if args.save:
        print(f"Saved {save(text, facts, results, args)} and its .json.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
