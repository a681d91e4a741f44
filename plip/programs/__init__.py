"""The PLIP programs (as open_clip_train is to open_clip): pre-training, fine-tuning, zero-shot evaluation, the
dataset split, embedding, search and the linear probe, each a module with ``main(argv=None) -> int`` run by its
``python -m plip.X`` shim, and the data, schedule, distributed and training-loop pieces they share. The model
library never imports this package.
"""
