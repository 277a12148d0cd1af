"""Doors for clients written against other image APIs, over the same job service as the native API.

- :mod:`serve_app.api.compat.a1111`: AUTOMATIC1111's ``/sdapi/v1/*`` (SillyTavern, Foundry VTT's Stable Images and
  Arcane Artifex, the AIYA Discord bot, Talemate, the ``webuiapi`` package).
- :mod:`serve_app.api.compat.openai`: OpenAI's images API (``/v1/images/*``, ``/v1/models``).
- :mod:`serve_app.api.compat.common`: what the compatible APIs share (base64 images, PNG text chunks).

docs/COMPAT.md sets up the clients.
"""

__all__: list[str] = []
