"""The fixed choices of options, as types: help lists them and Click refuses others."""

from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
"""Where a model runs (``auto``: CUDA when there is a GPU)."""

Precision = Literal["auto", "float32", "bfloat16", "float16", "int8"]
"""Numeric precision of the model's forward passes (int8: the model's OpenVINO int8 model)."""

TrainPrecision = Literal["auto", "float32", "bfloat16"]
"""Numeric precision of training (float16 would need a gradient scaler)."""

Compile = Literal["auto", "on", "off"]
"""Whether prediction runs the network through torch.compile (see :mod:`geounet.model.compiled`)."""

Tta = Literal["none", "flips", "d4"]
"""Test-time augmentation (see :mod:`geounet.model.tta`)."""

Loss = Literal["bce-dice", "bce", "dice"]
"""Training loss."""

SizeUnit = Literal["px", "m2"]
"""Unit of a minimum object size: scene pixels or ground square metres."""

ExportFormat = Literal["osm", "geojson"]
"""Formats of ``geounet export``: JOSM-ready OpenStreetMap XML, or RFC 7946 GeoJSON."""
