"""Webhooks: a job's end POSTed to the URL it carried, signed per the Standard Webhooks spec, from a durable outbox.

- :mod:`.signing`: the ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers (HMAC-SHA256).
- :mod:`.targets`: which URLs may be called (no loopback, private, link-local or metadata addresses unless the
  config allows them).
- :mod:`.outbox`: the ``webhook_deliveries`` rows the job store writes in the transaction that ends a job.
- :mod:`.deliverer`: the loop that sends what is due, retrying with backoff; at least once, the same
  ``webhook-id`` on every try.
"""

from serve_app.webhooks.deliverer import WebhookDeliverer
from serve_app.webhooks.outbox import Delivery, WebhookOutbox
from serve_app.webhooks.signing import sign, signature_headers
from serve_app.webhooks.targets import check_target

__all__ = ["Delivery", "WebhookDeliverer", "WebhookOutbox", "check_target", "sign", "signature_headers"]
