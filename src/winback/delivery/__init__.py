"""Delivery: the outbox, the worker and its channels, suppression, caps, quiet hours, warm-up.

Entry points: :func:`winback.delivery.service.run` (``winback worker``),
:func:`winback.delivery.suppression.unsubscribe` (the web app's unsubscribe),
:func:`winback.delivery.outbox.enqueue` (insert messages idempotently).
"""
