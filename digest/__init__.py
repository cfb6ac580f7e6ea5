"""paper-digest: publish only the research papers you have never seen."""

__version__ = "0.1.0"
