"""Payment gateway adapters: :mod:`.sandbox` (embedded default, offline) and :mod:`.stripe_gateway`."""

from __future__ import annotations


def make_gateway(settings, engine=None, clock=None):
    """The gateway ``[dunning] gateway`` names."""
    name = settings.dunning.gateway
    if name == "stripe":
        from winback.dunning.gateways.stripe_gateway import StripeGateway

        return StripeGateway.from_settings(settings)
    from winback.dunning.gateways.sandbox import SandboxGateway

    return SandboxGateway(engine, clock=clock or settings.clock())
