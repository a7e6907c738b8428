"""Shared plumbing with no domain logic: clock, money, errors, database engines."""
