"""Registered hospital systems: credentials, HMAC request authentication, replay window,
rate limits and webhooks out."""

from medsign.apps.auth import AuthenticatedApplication, RequestAuthenticator, SignedRequest
from medsign.apps.registry import (
    Application,
    ApplicationRegistry,
    ApplicationState,
    SignerScope,
    may_address,
)
from medsign.apps.webhooks import (
    DeliveryState,
    WebhookDelivery,
    WebhookDispatcher,
    enqueue_webhook,
)

__all__ = [
    "Application",
    "ApplicationRegistry",
    "ApplicationState",
    "AuthenticatedApplication",
    "DeliveryState",
    "RequestAuthenticator",
    "SignedRequest",
    "SignerScope",
    "WebhookDelivery",
    "WebhookDispatcher",
    "enqueue_webhook",
    "may_address",
]
