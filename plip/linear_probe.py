"""`python -m plip.linear_probe`: the linear-probe evaluation (frozen encoders, one trained linear layer on the image
features). The program is :mod:`plip.programs.linear_probe`."""

from plip.programs.linear_probe import main

if __name__ == "__main__":
    raise SystemExit(main())
