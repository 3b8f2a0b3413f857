"""Accuracy: pure metric functions under a thin metric layer.

- :mod:`~hgbench.accuracy.decode`: heatmaps to joint positions, the flip test;
- :mod:`~hgbench.accuracy.pck`: PCK correctness, pooling per joint and group, the occlusion split;
- :mod:`~hgbench.accuracy.pckh`: PCKh the two ways MPII tables compute it;
- :mod:`~hgbench.accuracy.mpii_files`: MPII prediction files scored against the ground truth files;
- :mod:`~hgbench.accuracy.coco`: OKS AP/AR through pycocotools and seed 003's heatmap PCK;
- :mod:`~hgbench.accuracy.evaluate`: the metric layer, which runs a model and scores it.
"""
