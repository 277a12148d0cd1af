"""Enhance: derived versions of any image, by upscaling, face repainting and restyling.

- tiles.py: overlapping tile plans and the feathered weights that blend tiles back without a seam;
- upscale.py: the upscale settings and engines (``lanczos``; ``hires``, planned here and repainted by the
  generator; ``model``), and the hires tile plan and blend;
- model.py: ESRGAN-family upscaler networks (the built-in compact net in plain torch, anything else through
  spandrel) and tiled inference;
- faces.py: face detection, the face crops to repaint and their feathered paste-back;
- structure.py: the depth-like structure map restyle's ``keep_structure`` conditions on.

Pure code never calls the generator: it plans repaints (crops and sizes) and blends their results, so the
serving code can batch tiles of one size together. The package imports nothing itself, so importing one module
does not pull in the others (nor torch).
"""
