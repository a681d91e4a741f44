"""The attribute predictor: the model, its labels and training, metrics, augmentation, schema migration and
the readers of labelled attribute datasets. Never imports the captioner."""
