"""sodkit curation core: dataset model, formats, sources and the curate CLI."""

__version__ = "0.1.0"
