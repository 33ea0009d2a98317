"""``python -m prodture.lsp``: the language server on stdio."""

from .server import main

if __name__ == "__main__":
    main()
