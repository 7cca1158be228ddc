"""ttclab: test-time compute for LLMs — sample, verify, store, scale offline, optimise, market."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ttclab")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
