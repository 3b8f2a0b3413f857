"""Accuracy: keypoint decoding, the benchmarks' metrics (PCK, PCKh, OKS AP) and the evaluation of a model."""
