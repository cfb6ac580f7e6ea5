"""paper-digest: publish only the research papers you have never seen."""

__version__ = "0.1.0"

# The settings file looked for in the working folder (kept here, with no imports, so the
# command line can name it without loading the configuration code).
CONFIG_NAME = "digest.toml"
