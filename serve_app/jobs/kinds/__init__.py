"""Job kinds: each is one module here (see :mod:`serve_app.jobs.kinds.base` for what a kind owns)."""

from serve_app.jobs.kinds.base import Accepted, JobKind, JobResult, KindPayload, KindRegistry, payload_summary
from serve_app.jobs.kinds.campaign import CampaignMapKind, CampaignMapRequest
from serve_app.jobs.kinds.enhance import EnhanceRequest, FaceFixKind, RestyleKind, UpscaleKind
from serve_app.jobs.kinds.figure import CreatureKind, FigureRequest, ItemKind, PortraitKind
from serve_app.jobs.kinds.generate import GenerateKind, GeneratePayload, GenerateRequest
from serve_app.jobs.kinds.map import TacticalMapKind, TacticalMapRequest

__all__ = [
    "Accepted",
    "CampaignMapKind",
    "CampaignMapRequest",
    "CreatureKind",
    "EnhanceRequest",
    "FaceFixKind",
    "FigureRequest",
    "GenerateKind",
    "GeneratePayload",
    "GenerateRequest",
    "ItemKind",
    "JobKind",
    "JobResult",
    "KindPayload",
    "KindRegistry",
    "PortraitKind",
    "RestyleKind",
    "TacticalMapKind",
    "TacticalMapRequest",
    "UpscaleKind",
    "default_kinds",
    "payload_summary",
]


def default_kinds() -> list[JobKind]:
    """The kinds limner runs: every job the service accepts is of one of these."""
    return [
        GenerateKind(),
        PortraitKind(),
        CreatureKind(),
        ItemKind(),
        TacticalMapKind(),
        CampaignMapKind(),
        UpscaleKind(),
        FaceFixKind(),
        RestyleKind(),
    ]
