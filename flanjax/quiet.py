"""Quiet by default: what TensorFlow, absl, libtpu and CUDA print while they load is
not shown unless `--verbose` or FLANJAX_VERBOSE=1 asks for it.

`setup()` runs first thing in the `flanjax` entry point, before jax or TensorFlow is
imported, because what it sets is read once at import or backend creation:

* JAX_PLATFORMS (when unset or empty): `cpu` on a machine with no TPU chip and no
  usable NVIDIA GPU, so libtpu (installed by the `tpu` extra, also for compile-checks)
  does not try to start a TPU runtime and print its host-bounds and worker-hostname
  errors; `cuda,cpu` when an NVIDIA GPU and jax's CUDA plugin are present. A TPU VM,
  an AMD GPU or a set JAX_PLATFORMS is left to jax. Compile-checks for TPU topologies
  still work: they load libtpu's compiler without a TPU backend.
* TF_CPP_MIN_LOG_LEVEL=2 (when unset): TensorFlow's and XLA's C++ INFO and WARNING
  lines (oneDNN notices, cache_dataset_ops) are dropped; errors stay.
* TensorFlow is imported, and GPUs hidden from it (the input pipeline runs on the
  host, and the accelerator's memory stays jax's), while file descriptor 2 goes to a
  temporary file: the absl pre-init notices, cudart_stub and cuInit lines printed
  then are dropped; any other line is passed on.
* seqio's "uncached FunctionDataset ... highly recommended that you cache" warning
  (one per task; flanjax's tasks are generated or read from local files and are not
  meant to be cached), its note that packing drops the pretokenized features and
  Orbax's notes on read-only checkpoint managers (the evaluator's) are filtered from
  the `absl` logger.

`announce_backend()` then says once which backend runs ("running on CPU: 8 devices").
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import re
import sys
import tempfile

VERBOSE_ENV = "FLANJAX_VERBOSE"
# jax's hardware_utils: Google's PCI vendor id and its TPU device ids (v2 to tpu7x).
_GOOGLE_VENDOR = "0x1ae0"
_TPU_DEVICE_IDS = {"0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"}
_NVIDIA_DEVICES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg")
_AMD_DEVICES = ("/dev/kfd",)
# Lines libraries print to fd 2 while loading: absl/glog-formatted C++ log lines and the
# pre-init notices.
_CHATTER = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|WARNING: Logging before InitGoogle\(\) is written to STDERR)"
)
# seqio's and Orbax's notices about how flanjax uses them, not about the user's run.
_NOTICES = (
    "Using an uncached FunctionDataset",
    "Features not in `features_length` will be removed during packing",
    "CheckpointManagerOptions.read_only=True, setting save_interval_steps=0",
    "Given directory is read only=",
)
_state = {"note": "", "announced": False, "filter": None}


def verbose_requested(argv: list[str]) -> bool:
    return "--verbose" in argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def tpu_chips() -> int:
    count = 0
    for vendor in glob.glob("/sys/bus/pci/devices/*/vendor"):
        try:
            with open(vendor) as f:
                if f.read().strip() != _GOOGLE_VENDOR:
                    continue
            with open(os.path.join(os.path.dirname(vendor), "device")) as f:
                count += f.read().strip() in _TPU_DEVICE_IDS
        except OSError:
            continue
    return count


def choose_platforms(env=os.environ) -> str:
    """Sets env["JAX_PLATFORMS"] as the module docstring says; returns a note for the
    backend line ("" when there is nothing to add)."""
    if env.get("JAX_PLATFORMS") or tpu_chips() or any(map(os.path.exists, _AMD_DEVICES)):
        return ""
    if any(os.path.exists(d) for d in _NVIDIA_DEVICES):
        if any(importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
            env["JAX_PLATFORMS"] = "cuda,cpu"
            return ""
        env["JAX_PLATFORMS"] = "cpu"
        return "an NVIDIA GPU is present but jax has no CUDA plugin: pip install 'jax[cuda12]'"
    env["JAX_PLATFORMS"] = "cpu"
    return ""


@contextlib.contextmanager
def dropping_chatter():
    """Sends file descriptor 2 to a temporary file for the block, then writes back every
    line but the libraries' loading chatter (`_CHATTER`)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [
                line
                for line in tmp.read().decode(errors="replace").splitlines()
                if line.strip() and not _CHATTER.match(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _hide_gpus_from_tensorflow() -> None:
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialized (in-process callers)
        tf.config.set_visible_devices([], "GPU")


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOTICES)


def setup(verbose: bool) -> None:
    """Before jax or TensorFlow is imported (see the module docstring)."""
    _state["note"], _state["announced"] = choose_platforms(), False
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # child processes (launchers) inherit it
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with dropping_chatter():
        _hide_gpus_from_tensorflow()
        import jax  # noqa: F401  (its plugins load here; the backend starts later)
    if _state["filter"] is None:
        _state["filter"] = _DropNotices()
        logging.getLogger("absl").addFilter(_state["filter"])


def announce_backend(command: str) -> None:
    """One line on stderr, once per command: the platform and its devices."""
    if _state["announced"]:
        return
    import jax

    _state["announced"] = True
    devices = jax.devices()
    n, platform = len(devices), devices[0].platform.upper()
    line = f"flanjax {command}: running on {platform}: {n} device" + "s" * (n > 1)
    if jax.process_count() > 1:
        line += f" ({jax.local_device_count()} on process {jax.process_index()})"
    if _state["note"]:
        line += f" ({_state['note']})"
    print(line, file=sys.stderr, flush=True)
