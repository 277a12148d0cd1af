"""Overlay: the exact, deterministic drawing stage after generation, and the geometry it draws.

- spec.py: what an overlay measures and draws, as frozen data, and the checks that name a bad field;
- grid.py (square and hex maths), tokens.py (footprints, reach, auras), templates.py (area templates and the
  cell rules), paths.py (paths, movement, walls), geometry.py (all of it for one spec);
- draw.py (the layers, on skia, anti-aliased and deterministic), fonts.py (the font Pillow embeds), figures.py
  (round VTT tokens, item cards, size-reference cues, on PIL);
- export/uvtt.py: Universal VTT 0.3 out and in.

Tests check every result against geometry they compute themselves. The package imports nothing itself, so
importing one module does not pull in the others.
"""
