"""The README's examples are real: its segment spec validates and compiles."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml

from winback.segments import compile_segment, parse_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_segment_example_validates_and_compiles():
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
              if "match:" in b]
    assert blocks
    for block in blocks:
        spec = parse_spec(yaml.safe_load(block))
        compiled = compile_segment(spec, dt.datetime(2025, 12, 31), {})
        assert "customer_profile" in compiled.sql
        assert "'price'" not in compiled.sql and "price" in [str(p) for p in compiled.params]


def test_readme_playbook_rule_example_validates_in_the_default_playbook():
    from winback.playbooks.spec import builtin_playbook_path, parse_playbook

    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
              if b.startswith("rules:")]
    assert blocks
    playbook = yaml.safe_load(builtin_playbook_path().read_text(encoding="utf-8"))
    for block in blocks:
        rules = yaml.safe_load(block)["rules"]
        playbook["rules"] = rules + [r for r in playbook["rules"] if r["name"] not in {x["name"] for x in rules}]
        spec = parse_playbook(playbook)
        assert spec.rules[0].name == rules[0]["name"]
