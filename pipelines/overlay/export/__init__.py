"""Exports of an overlay spec to files other tools read: :mod:`pipelines.overlay.export.uvtt` writes and reads the
Universal VTT map file (``.dd2vtt`` / ``.df2vtt`` / ``.uvtt``). The package imports nothing itself."""
