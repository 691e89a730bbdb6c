"""The Dagger runtime: the executors that `main.py`'s functions hand their work to.

Besides `main.py`, the only modules that import dagger; only `main.py` imports them.
One module per capability supplies its executor (containers for the check scheduler,
the scanners, the image builds and the publish guard, the migration job, the release
gates); every decision stays in the capability's package, the code the native CLI runs.
"""
