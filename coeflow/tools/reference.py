"""``docs/reference.md``: every trigger kind, operator and action type with its parameters, as
Markdown, from ``processor.core.vocabulary`` (``make reference`` writes it; a test keeps the
checked-in file equal)."""

from __future__ import annotations

from typing import Any

import orjson

from processor.core.vocabulary import vocabulary

_HEAD = """# Reference: triggers, operators, actions

Generated from the models that validate workflows (`make reference`; a test fails when this
file is stale). The contract is [`contract.md`](contract.md); [`workflows.md`](workflows.md)
shows them at work.
Text parameters of actions take merge fields (`{{record.email}}`); durations such as `due_in`
take `30s`, `15m`, `2h`, `2d`, `1w`, `1d12h`, at most `3650d`.
"""


def markdown() -> str:
    words = vocabulary()
    out = [_HEAD, "## Triggers (`trigger.type`)\n"]
    for trigger in words["triggers"]:
        fires = ", ".join(trigger["fires_on"] or []) or "not on record changes (see below)"
        out.append(f"### `{trigger['type']}`\n")
        if trigger["summary"]:
            out.append(trigger["summary"].replace("``", "`") + "\n")
        out.append(f"Record operations it fires on: {fires}.\n")
        out.append(_table(trigger["parameters"]))
    out.append("## Condition operators (`op`)\n")
    out.append("| op | aliases | value | compares before and after | fits fields of type |")
    out.append("| --- | --- | --- | --- | --- |")
    for op in words["operators"]:
        aliases = ", ".join(f"`{a}`" for a in op["aliases"]) or "none"
        both = "yes" if op["compares_before"] else "no"
        fits = "any" if op["fits"] == words["field_types"] else ", ".join(op["fits"])
        out.append(f"| `{op['op']}` | {aliases} | {op['value']} | {both} | {fits} |")
    out.append("\n## Actions (`actions[].type`)\n")
    for action in words["actions"]:
        out.append(f"### `{action['type']}`\n")
        out.append(f"{action['summary']}; commands on `{action['topic']}`.\n")
        out.append(_table(action["parameters"]))
    return "\n".join(out).rstrip() + "\n"


def _table(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema["properties"]
    if not properties:
        return "No parameters.\n"
    required = set(schema["required"])
    rows = ["| parameter | type | required | default | limits |", "| --- | --- | --- | --- | --- |"]
    for name, spec in properties.items():
        default = f"`{orjson.dumps(spec['default']).decode()}`" if "default" in spec else ""
        rows.append(
            f"| `{name}` | {_kind(spec)} | {'yes' if name in required else 'no'} | "
            f"{default} | {_limits(spec)} |"
        )
    return "\n".join(rows) + "\n"


def _kind(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if "anyOf" in spec:
        kinds = [_kind(s) for s in spec["anyOf"] if s.get("type") != "null"]
        return " or ".join(kinds) or "null"
    kind = spec.get("type", "any JSON value")
    if kind == "array":
        return f"list of {_kind(spec.get('items', {}))}"
    if kind == "object":
        values = spec.get("additionalProperties")
        return f"object of {_kind(values)}" if isinstance(values, dict) else "object"
    return str(kind)


def _limits(spec: dict[str, Any]) -> str:
    limits = []
    for source in [spec, *spec.get("anyOf", [])]:
        for key, word in (
            ("minLength", "at least {} character(s)"),
            ("maxLength", "at most {} characters"),
            ("minimum", "≥ {}"),
            ("exclusiveMinimum", "> {}"),
            ("maximum", "≤ {}"),
            ("maxProperties", "at most {} entries"),
        ):
            if key in source:
                limits.append(word.format(source[key]))
    return "; ".join(limits)


def main() -> None:
    import sys

    sys.stdout.write(markdown())


if __name__ == "__main__":
    main()
