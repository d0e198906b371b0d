"""Command-line tools: local Triton server, sample bag, demo."""
