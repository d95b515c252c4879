"""buildtail: streams CI builds from the files of legacy CI servers into Atlassian Compass."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("buildtail")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
