"""`python -m plip.finetune`: fine-tuning for text-based person retrieval (CMPM + CMPC).

The program is :mod:`plip.programs.finetune`.
"""

from plip.programs.finetune import main

if __name__ == "__main__":
    raise SystemExit(main())
