"""`python -m plip.dataset_split`: split dataset JSON files into train / test / valid.

The program is :mod:`plip.programs.dataset_split`.
"""

from plip.programs.dataset_split import main

if __name__ == "__main__":
    raise SystemExit(main())
