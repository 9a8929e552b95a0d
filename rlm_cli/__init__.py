"""rlm-cli: Recursive Language Models (Zhang, Kraska & Khattab, 2025; arXiv 2512.24601) on the command line."""

__version__ = "0.1.0"
