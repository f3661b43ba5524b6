"""Licence plates: corners, rectification, reading, formats, correction and voting.

Stages (each a small file): ``detector`` (plates with four corners from any detector),
``corners`` and ``rectify`` (upright plate images, batched), ``reader`` (the recogniser
interface; CTC) and ``chars`` (per-character detectors and reading order), ``alphabet``
(one plate alphabet for every reader), ``formats`` (per-country templates; Russia
first-class), ``correction`` and ``classify`` (look-alikes fixed per position; which
format), ``voting`` (reads of one track combined), ``pipeline`` (all of it on frames).
The product module is ``oko.modules.plates``.
"""
