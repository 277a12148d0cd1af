"""Overlays and maps at the edge: the JSON spec (models.py), the rows and versions (store.py), the CPU stage the
Overlay deployment hosts (stage.py) and the resource the routes call (service.py). The maths and drawing are pure,
in pipelines/overlay/."""
