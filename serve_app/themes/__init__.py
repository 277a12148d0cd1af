"""Themes: a campaign's look as versioned data (see :mod:`serve_app.themes.service`).

The pure parts (parsing, inheritance, variations) are :mod:`pipelines.styles`; the built-in themes are data
files in :mod:`serve_app.themes.packs`.
"""
