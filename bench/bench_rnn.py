"""The project's speed benchmark as a script; same options as ``python -m rnnfast bench``."""

from rnnfast.bench import main

if __name__ == "__main__":
    main()
