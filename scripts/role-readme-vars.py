#!/usr/bin/env python3
"""Write or check the variable table in each role's README from its meta/argument_specs.yml.

The table sits between two markers in roles/<role>/README.md; everything else in the README is
written by hand. Usage:

    scripts/role-readme-vars.py --check [ROLE ...]   # exit 1 and name each README that differs
    scripts/role-readme-vars.py --write [ROLE ...]   # rewrite the tables

tests/ansible/test_role_readme.py runs the check, so a spec change without the README fails CI.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROLES_DIR = Path(__file__).resolve().parents[1] / "roles"
BEGIN = (
    "<!-- BEGIN variables: scripts/role-readme-vars.py writes this from meta/argument_specs.yml -->"
)
END = "<!-- END variables -->"
# Ansible's documentation markup: C(code), O(option), V(value), I(italic), B(bold), U(url).
MARKUP = re.compile(r"\b([COVIBU])\(([^()]*)\)")


class ReadmeError(Exception):
    """A README without the markers, or a spec the table cannot be made from."""


def _plain(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        kind, inner = m.group(1), m.group(2)
        return f"`{inner}`" if kind in "COV" else inner

    return MARKUP.sub(one, " ".join(text.split()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return (
            f'`"{value}"`'
            if value == "" or value.strip() != value
            else f"`{' '.join(value.split())}`"
        )
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value is None:
        return "`null`"
    if isinstance(value, (int, float)):
        return f"`{value}`"
    dumped = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return f"`{dumped.strip()}`"


def _type(option: dict[str, Any]) -> str:
    kind = str(option.get("type", "str"))
    if kind == "list" and "elements" in option:
        return f"list of {option['elements']}"
    return kind


def table(role: str) -> str:
    """The Markdown table of the role's options, in the spec's order."""
    base = ROLES_DIR / role
    specs = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    options = specs["argument_specs"]["main"]["options"]
    rows = ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, option in options.items():
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(str(line) for line in description)
        meaning = _plain(str(description))
        if "choices" in option:
            meaning += " One of " + ", ".join(_value(c) for c in option["choices"]) + "."
        if option.get("required"):
            default = "required"
        elif "default" in option:
            default = _value(option["default"])
        elif name in defaults:
            default = _value(defaults[name])
        else:
            default = ""
        rows.append(f"| `{name}` | {_type(option)} | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(rows) + "\n"


def render(role: str, readme: str) -> str:
    """The README text with the table between the markers replaced by the generated one."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ReadmeError(f"roles/{role}/README.md: needs one line {BEGIN!r} and one {END!r}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(role)}{END}{tail}"


def roles() -> list[str]:
    return sorted(p.parent.parent.name for p in ROLES_DIR.glob("*/meta/argument_specs.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when a README differs")
    mode.add_argument("--write", action="store_true", help="rewrite the tables")
    parser.add_argument("roles", nargs="*", help="role names (default: every role)")
    args = parser.parse_args(argv)
    stale = []
    for role in args.roles or roles():
        path = ROLES_DIR / role / "README.md"
        text = path.read_text(encoding="utf-8")
        try:
            new = render(role, text)
        except ReadmeError as exc:
            print(exc, file=sys.stderr)
            return 2
        if new == text:
            continue
        if args.write:
            path.write_text(new, encoding="utf-8")
            print(f"wrote roles/{role}/README.md")
        else:
            stale.append(role)
    for role in stale:
        print(
            f"roles/{role}/README.md: variable table differs from meta/argument_specs.yml "
            "(run scripts/role-readme-vars.py --write)",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
