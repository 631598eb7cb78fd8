"""flanjax: FLAN-style instruction tuning in JAX.

`tasks/` (the task and mixture definitions researchers edit) installs as the
subpackage `flanjax.tasks`, and `gin_configs/` as package data of
`flanjax.gin_configs`, so nothing generic named `tasks` lands in site-packages.
"""

import setuptools

CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "gin-config==0.5.0",
    "sentencepiece==0.2.2",  # 0.2.3 needs protobuf >= 7.36, apache-beam < 7
    "numpy==2.4.6",
    "tensorboard==2.21.0",
    "sacrebleu==2.6.0",
    "rouge-score==0.1.2",
    "matplotlib==3.11.2",
    "pyarrow==25.0.1",  # parquet record shards (data/sharded_files.py)
]
TEST = ["pytest==9.2.0", "pytest-xdist==3.8.0", "ruff==0.17.6"]  # xdist: 2 workers
CONVERT = [
    "torch==2.13.0",
    "transformers==5.23.0",
    "safetensors==0.8.0",
    "tokenizers==0.23.3",
    "gguf==0.19.0",
    "accelerate==1.15.0",
    "peft==0.21.2",  # LoRA adapter export (flanjax/conversion/peft.py)
]
DATA = ["apache-beam[tfrecord]==2.77.0"]  # the offline preprocessing cache (data/cache.py)
TPU = ["jax[tpu]==0.10.2", "libtpu==0.0.42.1"]  # also AOT compile-checks on CPU-only hosts
GPU = ["jax[cuda12]==0.10.2", "jax-cuda12-plugin[with-cuda]==0.10.2", "jax-cuda12-pjrt==0.10.2"]

setuptools.setup(
    name="flanjax",
    version="0.1.0",
    description="JAX-native FLAN-style instruction tuning: SeqIO tasks, Flax NNX models, "
    "a sharded trainer, Orbax checkpoints and a held-out-cluster evaluator.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["flanjax", "flanjax.*"])
    + ["flanjax.tasks", "flanjax.gin_configs"],
    package_dir={"flanjax.tasks": "tasks", "flanjax.gin_configs": "gin_configs"},
    package_data={"flanjax.gin_configs": ["*.gin", "*/*.gin"]},
    install_requires=CORE,
    extras_require={
        "test": TEST,
        "convert": CONVERT,
        "tpu": TPU,
        "gpu": GPU,  # CUDA 12 wheels; not in "all" (CPU-only hosts)
        "data": DATA,
        "all": TEST + CONVERT + DATA + TPU,
    },
    entry_points={"console_scripts": ["flanjax=flanjax.cli:main"]},
)
