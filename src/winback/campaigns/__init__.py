"""Campaigns: sequences, triggers, scheduling and message rendering."""
