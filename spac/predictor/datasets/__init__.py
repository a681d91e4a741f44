"""Readers of pedestrian attribute datasets, each to the six SPAC groups through a mapping kept as data.

One module per dataset: :mod:`.pa100k` (PA-100K ``annotation.mat``), :mod:`.peta` (PETA ``Label.txt`` per subset),
:mod:`.rap` (RAP v1 / v2 ``RAP_annotation.mat``) and :mod:`.mined` (labels mined from captions, a parquet table);
over :mod:`.mapping` (templates/attribute_datasets/*.yaml: the dataset's bits <-> partial labels),
:mod:`.dataset` (the labelled splits every reader returns) and :mod:`.matfiles` (MATLAB files through scipy).
"""
