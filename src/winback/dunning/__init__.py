"""Dunning: stop involuntary churn (DESIGN.md ``dunning`` stage).

Billing webhooks (Stripe, Standard Webhooks, the sandbox) land raw in ``webhook_events``; the worker
parses them (:mod:`.providers`) into :class:`.events.BillingEvent` and applies them
(:mod:`.service`): failed invoices become cases, retried by the decline-aware :mod:`.policy`
through a :mod:`.gateways` adapter; customers get transactional notices and card-expiry reminders
(:mod:`.notices`) with a signed card-update link; :mod:`.report` measures what was recovered.
"""
