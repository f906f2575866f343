"""The curate CLI's command groups, one module each; ``cli.py`` registers them."""
