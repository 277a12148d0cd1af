"""The deployment's content policy, applied to every request from every door before any GPU work.

The matching is :mod:`pipelines.moderation` (pure, offline); this module holds the configured policy and
what a theme adds to it, and logs each refusal by field and category, never with the text.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from functools import cached_property

from pipelines.errors import InputError
from pipelines.moderation import ModerationError, Policy, load_policy, moderate
from serve_app.config import ModerationConfig

__all__ = ["ModerationError", "Moderator"]

logger = logging.getLogger("ray.serve.limner.moderation")


class Moderator:
    """Checks text against the configured policy.

    Args:
        config: The ``moderation`` section.
    """

    def __init__(self, config: ModerationConfig) -> None:
        self.config = config

    @cached_property
    def policy(self) -> Policy:
        """The policy, read on first use."""
        return load_policy(self.config.policy_path)

    def check(
        self,
        fields: Mapping[str, str],
        theme_allow: Collection[str] = (),
        theme_block: Collection[str] = (),
        *,
        door: str = "http",
    ) -> None:
        """Refuses ``fields`` (field name → text) when the policy, with a theme's additions, forbids them.

        See :meth:`blocked` for which categories apply. The policy's combined rules always apply.

        Raises:
            ModerationError: A field matched a blocked category (``param`` names it, ``category`` says which).
        """
        if not self.config.enabled:
            return
        blocked = self.blocked(theme_allow, theme_block)
        try:
            moderate(fields, self.policy, block=blocked)
        except ModerationError as exc:
            logger.warning("refused a %s request: category %s in field %s", door, exc.category, exc.param)
            raise

    def blocked(self, theme_allow: Collection[str] = (), theme_block: Collection[str] = ()) -> set[str]:
        """The categories refused for a request under a theme with these rules.

        A theme may always block more. It may lift only the policy's default blocks: categories an operator
        listed in ``moderation.block`` stay blocked whatever a theme says. ``moderation.allow`` lifts both.
        """
        known = set(self.policy.categories) | set(self.policy.combo_names)
        for param, names in (("moderation.block", theme_block), ("moderation.allow", theme_allow)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise InputError(param, unknown, f"categories from {sorted(self.policy.categories)}")
        extra, lifted = set(theme_block), set(theme_allow) - set(theme_block)
        if self.config.block is not None:
            blocked = set(self.config.block) | extra
        else:
            blocked = (set(self.policy.default_block) | extra) - lifted
        return blocked - set(self.config.allow)
