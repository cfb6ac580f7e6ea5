"""Publish: render pages, Markdown, email bodies and feeds, and write them atomically."""
