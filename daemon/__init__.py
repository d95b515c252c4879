"""buildtail: streams CI builds from the files of legacy CI servers into Atlassian Compass."""

# Kept here as a literal (and equal to pyproject.toml's, which a test checks): reading it from the
# installed metadata costs ``buildtail --version`` a third of its time.
__version__ = "0.2.0"
