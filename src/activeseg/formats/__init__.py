"""Interchange formats of labelling tools: pure codecs, no project state, no file layout.

Spec: ``shared/specs/formats.md``. Every function here turns bytes, JSON or XML into numpy arrays
(or back) and raises :class:`activeseg.errors.DatasetError` on malformed input, naming the file, the
item and the remedy; invalid options raise :class:`activeseg.errors.ConfigError`.

Modules:
    common: pixel boxes, label names -> values, merging answer layers, safe zip reading.
    crops: crop tasks (spec §7) and the pure import contract (spec §2).
    brush_rle: Label Studio brush RLE, the bit-packed RGBA ``rle-pack`` stream (§3).
    labelstudio: percent coordinates, task JSON, labelling config, export parsing (§3).
    cvat: "CVAT for images 1.1" XML and the "Segmentation mask 1.1" zip (§4).
    coco: COCO RLE, uncompressed and compressed, and semantic annotations (§5).

Conventions (spec §0): coordinates are native image pixels, boxes are half-open ``[x0, x1) x [y0, y1)``;
label values are the class indices ``0 .. C-1``, ``C`` = void (an answered "ignore"; 11 for CamVid)
and 255 = unlabelled (no answer).
"""
