"""Tracking: opens, clicks, unsubscribes, bounces and complaints; conversions and attribution;
campaign results against the holdout; experiment statistics and roll-out of winners.

Pure cores without I/O: :mod:`machine` (machine opens/clicks), :mod:`attribution` (last touch),
:mod:`stats` (tests and intervals). SQL lives in :mod:`repository`; :mod:`service`,
:mod:`conversions`, :mod:`results`, :mod:`rollout` and :mod:`bounces` orchestrate.
"""
