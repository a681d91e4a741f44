"""`python -m plip.zero_shot`: zero-shot text-to-image person retrieval.

The program is :mod:`plip.programs.zero_shot`.
"""

from plip.programs.zero_shot import main

if __name__ == "__main__":
    raise SystemExit(main())
