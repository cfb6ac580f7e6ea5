"""CLI: click commands, the only place that prints or exits."""
