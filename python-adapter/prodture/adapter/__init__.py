"""The prodture debug adapter (``python -m prodture.adapter``): DAP on stdio, on top of debugpy."""
