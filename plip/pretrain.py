"""`python -m plip.pretrain`: PLIP pre-training on corpus shards. The program is :mod:`plip.programs.pretrain`."""

from plip.programs.pretrain import main

if __name__ == "__main__":
    raise SystemExit(main())
