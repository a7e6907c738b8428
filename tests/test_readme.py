"""The README's examples are real: its segment spec validates and compiles."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml

from winback.segments import compile_segment, parse_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_segment_example_validates_and_compiles():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        spec = parse_spec(yaml.safe_load(block))
        compiled = compile_segment(spec, dt.datetime(2025, 12, 31), {})
        assert "customer_profile" in compiled.sql
        assert "'price'" not in compiled.sql and "price" in [str(p) for p in compiled.params]
