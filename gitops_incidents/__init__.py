"""gitops-incidents: incident management for workflow platforms, kept as plain files in git."""

# The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.2.0"
