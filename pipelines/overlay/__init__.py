"""Overlay: the exact, deterministic drawing stage after generation.

Everything here is pure PIL drawing with fixed geometry: the same inputs give the same pixels, so tests can check
the results against geometry they compute themselves. :mod:`pipelines.overlay.figures` draws the figure extras
(round VTT tokens, item cards, size-reference cues); issue 10 adds battle-map overlays (grids and the like) as
sibling modules. The package imports nothing itself, so importing one module does not pull in the others.
"""
