"""`python -m plip.search`: the top-k images of an embeddings file for a description or an image. The program is
:mod:`plip.programs.search`."""

from plip.programs.search import main

if __name__ == "__main__":
    raise SystemExit(main())
