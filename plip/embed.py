"""`python -m plip.embed`: embed images and / or texts into a parquet file.

The program is :mod:`plip.programs.embed`.
"""

from plip.programs.embed import main

if __name__ == "__main__":
    raise SystemExit(main())
