"""The project's speed benchmark as a script; same options as ``python -m rnnfast bench``."""

import os

# Set before NumPy and SciPy load their OpenBLAS (see rnnfast.bench).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")

from rnnfast.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
