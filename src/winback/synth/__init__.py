"""Realistic data generator with ground truth: ``generate("saas" | "ecommerce", customers, seed, out_dir)``."""

from winback.synth.generate import GenerateResult, generate

__all__ = ["GenerateResult", "generate"]
