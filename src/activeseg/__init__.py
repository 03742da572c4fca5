"""activeseg: region-based active learning for semantic segmentation."""

__version__ = "0.1.0"

#: Label value of a pixel nobody has labelled yet (ignored by loss and metrics).
UNLABELLED = 255
