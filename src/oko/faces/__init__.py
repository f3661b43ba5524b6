"""Faces: detection (YuNet, SCRFD, YOLOv8-face), 5-point alignment, embeddings, quality,
a persistent gallery with batched search, attributes, and verification metrics.

Importing this package is cheap on purpose (the CLI imports it for `oko --help`); the
detector families register themselves when ``oko.faces.detect`` is imported.
"""
