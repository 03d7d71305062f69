"""A connector's reference (:mod:`marketplace_service.catalog.reference`) as Markdown (GitHub
flavoured: tables), to read or paste into docs. Every text from the manifest is escaped: a
description cannot open a link, an HTML tag or a heading, nor break a table."""

from __future__ import annotations

import json
import re

from marketplace_service.catalog.reference import (
    ConfigFieldRef,
    FieldRef,
    Needs,
    Reference,
    StreamRef,
    WebhooksRef,
)

SCHEMES = {
    "oauth2": "OAuth 2.0: you sign in at the provider and consent",
    "api_key": "an API key",
    "basic": "a username and a password",
    "none": "none",
}
_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
_BLOCK = re.compile(r"^([#>+=-])|^(\d+)([.)])")


def text(value: str | None) -> str:
    """Plain words as Markdown: on one line, every inline markup character escaped."""
    return _INLINE.sub(r"\\\1", " ".join((value or "").split()))


def para(value: str | None) -> str:
    """Words that start a line: escaped too where they would open a heading, a quote or a list."""
    return _BLOCK.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text(value))


def code(value: str, *, cell: bool = False) -> str:
    """``value`` as inline code, fenced by more backticks than it holds; in a table ``cell``,
    pipes escaped (GitHub splits cells on them even inside code)."""
    value = " ".join(value.split())
    if cell:
        value = value.replace("|", "\\|")
    longest = max((len(r) for r in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or longest else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table(heads: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)] + [
        "| " + " | ".join(cell or " " for cell in row) + " |" for row in rows
    ]


def fields_table(fields: list[FieldRef]) -> list[str]:
    if not fields:
        return ["No fields declared."]
    return _table(
        ["Field", "Type", "Nullable", "Required", "Description"],
        [[code(f.name, cell=True), text(f.type), _yes(f.nullable), _yes(f.required),
          text(f.description)] for f in fields],
    )  # fmt: skip


def config_table(fields: list[ConfigFieldRef]) -> list[str]:
    if not fields:
        return ["Nothing to fill in."]
    rows = []
    for f in fields:
        default = "" if f.default is None else code(json.dumps(f.default), cell=True)
        about = " ".join(x for x in (text(f.title) + ("." if f.title else ""),
                                     text(f.description)) if x)  # fmt: skip
        rows.append([code(f.name, cell=True), text(f.type), _yes(f.required), _yes(f.secret),
                     default, about])  # fmt: skip
    return _table(["Field", "Type", "Required", "Secret", "Default", "Description"], rows)


def needs_lines(needs: list[Needs]) -> list[str]:
    out = []
    for need in needs:
        groups = ", or ".join(" and ".join(code(f) for f in group) for group in need.groups)
        lead = "At least one of" if need.rule == "any_of" else "Exactly one of"
        out.append(f"{lead}: {groups}.")
    return out


def writes_words(stream: StreamRef) -> str:
    if not stream.writable:
        return "no (read only)"
    if stream.writes is None:
        return "yes (which writes is not declared)"
    return ", ".join(stream.writes) if stream.writes else "yes"


def deletions_words(stream: StreamRef) -> str:
    if stream.deletions is None:
        return "not declared"
    if not stream.deletions:
        return "not seen"
    how = {"read": "by its reads", "webhooks": "through webhooks"}
    return "seen " + " and ".join(how[w] for w in stream.deletions_seen_by)


def _stream(stream: StreamRef) -> list[str]:
    out = [f"### {code(stream.name)}", ""]
    if stream.description:
        out += [para(stream.description), ""]
    read = (f"incremental, by {code(stream.cursor_field)}" if stream.cursor_field
            else "in full each sync")  # fmt: skip
    out += [
        f"- Primary key: {code(stream.primary_key) if stream.primary_key else 'none'}",
        f"- Read: {read}",
        f"- Writes: {writes_words(stream)}",
        f"- Deletions at the provider: {deletions_words(stream)}",
        "",
    ]
    return out + fields_table(stream.fields) + [""]


def _webhooks(hooks: WebhooksRef) -> list[str]:
    out = ["## Webhooks", "",
           "Each install gets its own webhook URL and secret to give the provider.", "",
           f"- Signature: {text(hooks.signature)}"]  # fmt: skip
    if hooks.tolerance_seconds is not None:
        out.append(f"- Timestamps older than {hooks.tolerance_seconds} s are refused")
    out.append("")
    rows = []
    for event in hooks.events:
        types = ", ".join(code(t, cell=True) for t in event.types)
        how = []
        if event.carries_record:
            how.append("carries the record" + (" (or its deletion)" if event.deletions else ""))
        if event.pull:
            how.append(f"triggers a pull of {code(event.pull, cell=True)}")
        rows.append(
            [types, code(event.updates, cell=True) if event.updates else "", "; ".join(how)]
        )
    out += [*_table(["Event types", "Updates", "What happens"], rows), ""]
    if hooks.setup:
        out += [f"Setup at the provider: {text(hooks.setup)}", ""]
    return out


def render(ref: Reference) -> str:
    """The whole reference as one Markdown document."""
    out = [f"# {text(ref.name)} {text(ref.version)}", ""]
    if ref.description:
        out += [para(ref.description), ""]
    scheme = SCHEMES.get(ref.auth.scheme) or text(ref.auth.scheme)
    out += [f"Catalog slug: {code(ref.slug)}", "", "## Sign-in", "",
            f"Authentication: {scheme}.", ""]  # fmt: skip
    if ref.auth.scopes:
        out += ["OAuth scopes asked for: " + ", ".join(code(s) for s in ref.auth.scopes) + ".", ""]
    out += ["## Configuration", "", *config_table(ref.config), ""]
    if ref.config_needs:
        out += [*needs_lines(ref.config_needs), ""]
    out += ["## Streams", ""]
    if not ref.streams:
        out += ["It declares no stream.", ""]
    for stream in ref.streams:
        out += _stream(stream)
    out += ["## Actions", ""]
    if not ref.actions:
        out += ["It declares no action.", ""]
    for action in ref.actions:
        out += [f"### {code(action.name)}", ""]
        if action.description:
            out += [para(action.description), ""]
        out += [("Idempotent: safe to repeat." if action.idempotent else
                 "Not idempotent: send an Idempotency-Key to make a retry safe."), "",
                "Input:", "", *fields_table(action.input), ""]  # fmt: skip
        if action.input_needs:
            out += [*needs_lines(action.input_needs), ""]
        out += ["Output:", "", *fields_table(action.output), ""]
    if ref.webhooks is not None:
        out += _webhooks(ref.webhooks)
    return "\n".join(out).rstrip("\n") + "\n"
