"""hgbench: train, profile and compare stacked-hourglass pose networks under one protocol.

The data flow (see README.md): ``variants/*.yaml`` -> :mod:`hgbench.config` -> model ->
:mod:`hgbench.train` / :mod:`hgbench.accuracy.evaluate` / :mod:`hgbench.profile` -> records in
:mod:`hgbench.records` -> :mod:`hgbench.analysis.report`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hgbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
