"""Message templates: sandboxed, strict, localised rendering of campaign emails.

Templates
---------
One YAML file per template key: ``winback/reminder`` is ``winback/reminder.yaml`` under a
templates folder. Its top-level keys are locales (``en`` is required; ``ja``, ``ko``, ``uk``,
``zh`` optional) plus an optional ``description``. Each locale holds::

    en:
      subject:                 # one string, or subject variants keyed a, b, c ... (A/B tests)
        a: "We saved your {{ product.name }} workspace, {{ customer.first_name }}"
        b: "..."
      preheader: "..."         # optional: the preview line inboxes show next to the subject
      text: |                  # the plain-text part, written as text (not stripped HTML)
        Hi {{ customer.first_name }},
        ...
      html: |                  # the HTML body: the message's content only (the layout adds the rest)
        <p>Hi {{ customer.first_name }},</p>
        {{ button(links.cta, "Come back") }}

Every part is a Jinja2 template run in a :class:`~jinja2.sandbox.SandboxedEnvironment` (no access
to private attributes, no Python internals); the HTML part is autoescaped, the others are not. The
subject and preheader are collapsed to one line (CR/LF and runs of whitespace become one space).

Lookup: :func:`render_message` looks for the key in each folder of ``search_paths`` in order - the
workspace's ``templates/`` folder first (overrides), then the shipped folder
(``winback/campaigns/templates``, always searched last). The first file found owns the key: an
override replaces every locale of it, and a locale the file lacks falls back to English.

The layout (HTML frame, preheader, footer) is not a template key and is read from the shipped
folder only (``templates/_layout/``): every **commercial** message gets a footer in both parts,
in its locale, with a visible unsubscribe link (``links.unsubscribe``), the preferences link
(``links.preferences``) when given, the sender's postal address (``sender.postal_address``) and why
the reader gets it. Transactional messages get the postal address and a service-message line, no
marketing wording. A workspace template cannot remove the footer.

Merge tags (the contract; the campaign scheduler builds the context)
------------------------------------------------------------------
::

    customer: {id, first_name, name, company, email, plan, plan_name, locale, country,
               since (date), tenure_months}
    product: {name, url}
    sender: {name, address, postal_address}
    reason: str   # price | missing_feature | usability | support | competitor | other |
                  # involuntary | unknown
    strategy: {key, title, message}          # message is already localised text
    features_used: [str]                     # feature display names
    past_purchases: [{name, date, amount_minor, currency}]
    requested_features: [{key, name, shipped (bool), shipped_at}]
    shipped_while_away: [{name, kind, shipped_at}]
    competitor: str | None
    offer: {key, kind, title, percent, months, days, free_months, amount_minor, currency,
            expires_at} | None               # title is localised text
    coupon: {code, expires_at} | None
    checkout: {items: [{name, quantity, amount_minor}], amount_minor, currency} | None
    links: {cta, unsubscribe, preferences, survey, card_update, booking, referral, tutorials}
    variant: {subject, cta}                  # experiment variant keys (may be None)
    step: {key, index}

A template may only use these tags (:func:`check_templates` walks the Jinja AST; rendering checks
the same before it runs). A value that is missing, ``None`` or empty is *missing*: testing it
(``{% if coupon %}``) is false, comparing it (``variant.cta == "book"``) is false, but printing,
iterating or formatting it is an error - unless a fallback fills it: first the playbook's
``fallbacks`` entry for that tag path in the message's locale (``customer.first_name: {en: there,
ja: お客様}``), then a template default ``{{ customer.first_name | fallback("there") }}``.
Otherwise :class:`TemplateError` names the template, locale, part, line and the tag.

Filters and helpers available in templates:

* ``money(amount_minor, currency)`` - ``{{ offer.amount_minor | money(offer.currency) }}``,
  localised (``$20.00``, ``￥3,000``, ``20,00 USD``); minor units per ISO 4217 (JPY has none);
* ``date`` - a date, datetime or ISO string in the locale's medium format (``Jan 15, 2026``,
  ``2026年1月15日``);
* ``percent`` - ``{{ offer.percent | percent }}`` -> ``25%`` (``25`` means 25 %);
* ``number`` - a localised number (``1,234``);
* ``and_list`` - ``{{ features_used | and_list }}`` -> ``A, B, and C`` / ``A、B、C``;
* ``fallback(default)`` - the default when the value is missing;
* ``honorific`` - a name as the locale addresses a reader (ja ``花子様``, ko ``민지님``,
  zh ``小明，您好``; en and uk unchanged) - also right for the playbook's fallbacks
  (``お客様``, ``고객님``, ``您好`` are left as they are);
* ``button(url, label)`` (HTML) - a table-based call-to-action button; ``link(url, label)`` - an
  inline link; ``coupon_box(code)`` - the coupon code in a dashed box. Only http, https and
  mailto URLs are accepted.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from winback.kit.errors import WinbackError
from winback.kit.money import Money
from winback.playbooks.spec import LOCALES

__all__ = [
    "KNOWN_TAGS", "SHIPPED_TEMPLATES", "RenderedMessage", "TemplateError", "TemplateIssue",
    "TemplateSecurityError", "check_templates", "known_tag_paths", "render_message",
    "resolve_locale", "sample_context",
]

SHIPPED_TEMPLATES = Path(__file__).with_name("templates")
_LAYOUT_DIR = SHIPPED_TEMPLATES / "_layout"
PARTS = ("subject", "preheader", "text", "html")
CATEGORIES = ("commercial", "transactional")

# ------------------------------------------------------------------------------ merge tags

_LIST = "list"
_ANY = object()  # schema of a value whose inside is not described (dates, numbers, strings)


def _list(item: Any = _ANY) -> tuple:
    return (_LIST, item)


#: The merge-tag schema: a dict is a mapping of known keys, ``(list, item)`` a list, ``_ANY`` a leaf.
KNOWN_TAGS: dict[str, Any] = {
    "customer": {k: _ANY for k in ("id", "first_name", "name", "company", "email", "plan", "plan_name",
                                   "locale", "country", "since", "tenure_months")},
    "product": {"name": _ANY, "url": _ANY},
    "sender": {"name": _ANY, "address": _ANY, "postal_address": _ANY},
    "reason": _ANY,
    "strategy": {"key": _ANY, "title": _ANY, "message": _ANY},
    "features_used": _list(),
    "past_purchases": _list({"name": _ANY, "date": _ANY, "amount_minor": _ANY, "currency": _ANY}),
    "requested_features": _list({"key": _ANY, "name": _ANY, "shipped": _ANY, "shipped_at": _ANY}),
    "shipped_while_away": _list({"name": _ANY, "kind": _ANY, "shipped_at": _ANY}),
    "competitor": _ANY,
    "offer": {k: _ANY for k in ("key", "kind", "title", "percent", "months", "days", "free_months",
                                "amount_minor", "currency", "expires_at")},
    "coupon": {"code": _ANY, "expires_at": _ANY},
    "checkout": {"items": _list({"name": _ANY, "quantity": _ANY, "amount_minor": _ANY}),
                 "amount_minor": _ANY, "currency": _ANY},
    "links": {k: _ANY for k in ("cta", "unsubscribe", "preferences", "survey", "card_update", "booking",
                                "referral", "tutorials")},
    "variant": {"subject": _ANY, "cta": _ANY},
    "step": {"key": _ANY, "index": _ANY},
    # transactional dunning notices (winback.dunning.notices)
    "dunning": {**{k: _ANY for k in ("amount_minor", "currency", "plan_name", "reason", "decline_code", "failed_at",
                                     "next_attempt_at", "grace_until", "paid_at", "days_left", "valid_through")},
                "card": {k: _ANY for k in ("brand", "last4", "exp_month", "exp_year", "expires")}},
}


def known_tag_paths() -> list[str]:
    """Every known merge-tag path (``customer.first_name``, ``past_purchases.name`` ...)."""
    out: list[str] = []

    def walk(schema: Any, path: str) -> None:
        out.append(path)
        if isinstance(schema, tuple):
            schema = schema[1]
        if isinstance(schema, dict):
            for key, sub in schema.items():
                walk(sub, f"{path}.{key}")

    for name, schema in KNOWN_TAGS.items():
        walk(schema, name)
    return out


# ------------------------------------------------------------------------------ errors


class TemplateError(WinbackError):
    """A template is missing, invalid, uses an unknown tag, or a merge value is missing."""

    def __init__(self, message: str, *, template: str | None = None, locale: str | None = None,
                 part: str | None = None, line: int | None = None, tag: str | None = None):
        super().__init__(message)
        self.template, self.locale, self.part, self.line, self.tag = template, locale, part, line, tag


class TemplateSecurityError(TemplateError, SecurityError):
    """A template tried something the sandbox forbids (private attributes, Python internals)."""

    def __str__(self) -> str:  # WinbackError's one-line form, not Jinja's
        return TemplateError.__str__(self)


@dataclass(frozen=True)
class TemplateIssue:
    """One problem found by :func:`check_templates`."""

    template: str
    message: str
    locale: str | None = None
    part: str | None = None
    line: int | None = None  # line inside the part (1-based)
    file: str | None = None
    file_line: int | None = None

    def __str__(self) -> str:
        where = [self.template]
        if self.locale:
            where.append(self.locale)
        if self.part:
            where.append(self.part)
        if self.line:
            where.append(f"line {self.line}")
        loc = f" ({self.file}:{self.file_line})" if self.file and self.file_line else (
            f" ({self.file})" if self.file else "")
        return f"{', '.join(where)}{loc}: {self.message}"


@dataclass(frozen=True)
class RenderedMessage:
    template_key: str
    locale: str  # the locale rendered (en when the template has no variant for the requested one)
    subject: str
    subject_variant: str | None  # the subject key used (None: the template has a single subject)
    preheader: str
    text: str
    html: str


# ------------------------------------------------------------------------------ locales

_LANGUAGE_ALIASES = {"cmn": "zh", "yue": "zh", "jpn": "ja", "kor": "ko", "ukr": "uk", "zho": "zh",
                     "chi": "zh", "eng": "en", "ua": "uk"}


def resolve_locale(locale: str | None) -> str:
    """A BCP 47 (or POSIX) locale to one of en, ja, ko, uk, zh: ``zh-Hant``/``zh-TW`` -> zh,
    ``ja-JP`` -> ja, ``ko_KR.UTF-8`` -> ko; unknown, empty or None -> en."""
    if not locale or not isinstance(locale, str):
        return "en"
    tag = locale.strip().split(".")[0].split("@")[0]
    language = re.split(r"[-_\s]", tag, maxsplit=1)[0].lower()
    language = _LANGUAGE_ALIASES.get(language, language)
    return language if language in LOCALES else "en"


def _format_locale(message_locale: str, requested: str | None) -> str:
    """The Babel locale for numbers and dates: the reader's own locale (``en-GB``) when it is in the
    message's language, else the message's language."""
    if requested and resolve_locale(requested) == message_locale:
        from babel import Locale, UnknownLocaleError

        try:
            parsed = Locale.parse(requested.strip().split(".")[0].replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            return message_locale
        if parsed.language == message_locale:
            return str(parsed)
    return message_locale


# ------------------------------------------------------------------------------ missing values


class _Missing(StrictUndefined):
    """A missing merge value: false in tests, unequal to anything, an error when printed, iterated or
    formatted (``StrictUndefined`` otherwise)."""

    __slots__ = ("_tag",)

    def __init__(self, hint=None, obj=None, name=None, exc=UndefinedError, tag: str | None = None):
        from jinja2.utils import missing

        super().__init__(hint, missing if obj is None else obj, name, exc)
        self._tag = tag or name

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint or self._undefined_exception is not UndefinedError:
            return super()._undefined_message
        return f"merge tag {self._tag!r} has no value (no fallback for it in this locale)"

    def __bool__(self) -> bool:
        if self._undefined_exception is not UndefinedError:
            self._fail_with_undefined_error()
        return False

    def __eq__(self, other: object) -> bool:
        if self._undefined_exception is not UndefinedError:
            self._fail_with_undefined_error()
        return isinstance(other, _Missing)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return id(self)


class _TagDict(dict):
    """A mapping of the merge context that knows its tag path (for error messages)."""

    __slots__ = ("tag_path",)


def _is_empty(value: Any) -> bool:
    return value is None or isinstance(value, _Missing) or (isinstance(value, str) and not value.strip())


def _wrap(value: Any, path: str) -> Any:
    if _is_empty(value):
        return value if isinstance(value, _Missing) else _Missing(tag=path)
    if isinstance(value, Mapping):
        out = _TagDict({str(k): _wrap(v, f"{path}.{k}") for k, v in value.items()})
        out.tag_path = path
        return out
    if isinstance(value, (list, tuple)):
        return [_wrap(v, path) for v in value]
    return value


def _child_path(obj: Any, key: Any) -> str:
    base = obj.tag_path if isinstance(obj, _TagDict) else (obj._tag if isinstance(obj, _Missing) else "?")
    return f"{base}.{key}"


def _apply_fallbacks(context: dict, fallbacks: Mapping[str, Mapping[str, str]] | None, locale: str) -> None:
    for path, texts in (fallbacks or {}).items():
        text = (texts or {}).get(locale)
        if _is_empty(text):
            continue
        *parents, leaf = path.split(".")
        holder: Any = context
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and _is_empty(holder.get(leaf)):
            holder[leaf] = str(text)


# ------------------------------------------------------------------------------ environment


class _Env(SandboxedEnvironment):
    """The sandbox, with merge-context mappings read by key (``checkout.items`` is the key, not
    ``dict.items``) and missing values chained (``offer.title`` of a missing offer is missing)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(attribute, str) and attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        if isinstance(obj, _TagDict):
            return obj[attribute] if attribute in obj else _Missing(tag=_child_path(obj, attribute))
        if isinstance(obj, _Missing):
            if obj._undefined_exception is not UndefinedError:
                return obj
            return _Missing(tag=_child_path(obj, attribute))
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and (isinstance(obj, (_TagDict, _Missing)) or argument.startswith("_")):
            return self.getattr(obj, argument)
        if isinstance(obj, _Missing):
            return _Missing(tag=_child_path(obj, argument))
        return super().getitem(obj, argument)


def _finalize(value: Any) -> Any:
    if value is None:
        raise UndefinedError("an expression printed None")
    return value


def _fmt_locale(ctx) -> str:
    return ctx.get("__winback_format_locale") or ctx.get("__winback_locale") or "en"


def _require(value: Any, what: str) -> Any:
    if _is_empty(value):
        if isinstance(value, _Missing):
            value._fail_with_undefined_error()
        raise UndefinedError(f"{what} has no value")
    return value


def _f_money(ctx, amount_minor: Any, currency: Any = None) -> str:
    amount_minor = _require(amount_minor, "the amount")
    currency = _require(currency, "the currency")
    return Money(int(amount_minor), str(currency)).format(_fmt_locale(ctx))


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            return dt.datetime.fromisoformat(text).date()
        except ValueError:
            return dt.date.fromisoformat(text)
    raise UndefinedError(f"not a date: {value!r}")


def _f_date(ctx, value: Any, format: str = "medium") -> str:
    from babel.dates import format_date

    if format not in ("short", "medium", "long", "full"):
        raise UndefinedError(f"date format must be short, medium, long or full, not {format!r}")
    return format_date(_to_date(_require(value, "the date")), format, locale=_fmt_locale(ctx))


def _f_percent(ctx, value: Any) -> str:
    from babel.numbers import format_percent

    value = Decimal(str(_require(value, "the percentage")))
    return format_percent(value / 100, format="#,##0.##%", locale=_fmt_locale(ctx))


def _f_number(ctx, value: Any) -> str:
    from babel.numbers import format_decimal

    return format_decimal(Decimal(str(_require(value, "the number"))), locale=_fmt_locale(ctx))


def _f_and_list(ctx, values: Any) -> str:
    from babel.lists import format_list

    items = [str(_require(v, "a list item")) for v in _require(values, "the list")]
    return format_list(items, locale=_fmt_locale(ctx)) if items else ""


def _f_fallback(value: Any, default: Any = "") -> Any:
    return default if _is_empty(value) else value


_HONORIFIC = {"ja": ("様", "様"), "ko": ("님", "님"), "zh": ("，您好", "您好")}


def _f_honorific(ctx, value: Any) -> str:
    name = str(_require(value, "the name")).strip()
    suffix, already = _HONORIFIC.get(ctx.get("__winback_locale") or "en", ("", ""))
    if not suffix or name.endswith(already):
        return name
    return name + suffix


_SAFE_URL = re.compile(r"^(https?://|mailto:)[^\s\"'<>\\]+$", re.IGNORECASE)


def _safe_url(url: Any) -> str:
    text = str(_require(url, "the link")).strip()
    if not _SAFE_URL.match(text):
        raise SecurityError(f"refusing link {text[:60]!r}: only http(s) and mailto URLs are allowed")
    return text


_FONT = "font-family:Arial,Helvetica,sans-serif;"


def _g_button(url: Any, label: Any) -> Markup:
    href = escape(_safe_url(url))
    text = escape(_require(label, "the button label"))
    return Markup(
        '<table role="presentation" cellspacing="0" cellpadding="0" border="0" style="margin:24px 0;">'
        '<tr><td align="center" bgcolor="#1f5fd1" style="border-radius:6px;background-color:#1f5fd1;">'
        f'<a href="{href}" target="_blank" style="display:inline-block;padding:13px 26px;{_FONT}'
        'font-size:16px;line-height:20px;font-weight:bold;color:#ffffff;text-decoration:none;'
        f'border-radius:6px;">{text}</a></td></tr></table>'
    )


def _g_link(url: Any, label: Any = None) -> Markup:
    href = _safe_url(url)
    text = href if label is None else _require(label, "the link label")
    return Markup(f'<a href="{escape(href)}" target="_blank" style="color:#1f5fd1;">{escape(text)}</a>')


def _g_coupon_box(code: Any) -> Markup:
    text = escape(_require(code, "the coupon code"))
    return Markup(
        '<table role="presentation" cellspacing="0" cellpadding="0" border="0" style="margin:16px 0;">'
        '<tr><td style="border:2px dashed #1f5fd1;border-radius:6px;padding:10px 20px;'
        f'font-family:Consolas,Menlo,monospace;font-size:20px;font-weight:bold;letter-spacing:2px;'
        f'color:#111827;">{text}</td></tr></table>'
    )


def _make_env(autoescape: bool) -> _Env:
    from jinja2 import pass_context

    env = _Env(autoescape=autoescape, undefined=_Missing, finalize=_finalize, trim_blocks=True,
               lstrip_blocks=True, keep_trailing_newline=False, auto_reload=False)
    env.filters.update({
        "money": pass_context(_f_money), "date": pass_context(_f_date), "percent": pass_context(_f_percent),
        "number": pass_context(_f_number), "and_list": pass_context(_f_and_list), "fallback": _f_fallback,
        "honorific": pass_context(_f_honorific),
    })
    env.globals.update({"button": _g_button, "link": _g_link, "coupon_box": _g_coupon_box})
    return env


_TEXT_ENV = _make_env(autoescape=False)
_HTML_ENV = _make_env(autoescape=True)

# ------------------------------------------------------------------------------ the tag check


class _TagChecker:
    """Walks a template's AST and reports names and attribute paths that are not merge tags."""

    def __init__(self, env: _Env):
        self.globals = set(env.globals)
        self.issues: list[tuple[int | None, str, bool]] = []  # (line, message, unsafe)

    def check(self, tree: nodes.Template) -> list[tuple[int | None, str, bool]]:
        self._visit(tree, {})
        return self.issues

    # a scope maps local names to a schema
    def _schema(self, node: nodes.Node, scope: dict) -> tuple[Any, str | None]:
        """(schema, tag path) of an expression; ``(None, None)`` when it is not a tag path."""
        if isinstance(node, nodes.Name):
            if node.name in scope:
                return scope[node.name]
            if node.name in KNOWN_TAGS:
                return KNOWN_TAGS[node.name], node.name
            if node.name in self.globals or node.name in ("loop", "caller", "varargs", "kwargs"):
                return _ANY, None
            self.issues.append((node.lineno, f"unknown merge tag {node.name!r}", False))
            return _ANY, None
        attr: Any = None
        if isinstance(node, nodes.Getattr):
            attr, base = node.attr, node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr, base = node.arg.value, node.node
        else:
            self._visit(node, scope)
            return _ANY, None
        if isinstance(attr, str) and attr.startswith("_"):
            self.issues.append((node.lineno, f"access to the private attribute {attr!r} is not allowed", True))
            self._visit(base, scope)
            return _ANY, None
        schema, path = self._schema(base, scope)
        if isinstance(schema, tuple):  # attribute of a list: only safe for indexes
            return (schema[1], path) if isinstance(attr, int) else (_ANY, None)
        if isinstance(schema, dict):
            if attr not in schema:
                where = f"{path}.{attr}" if path else str(attr)
                self.issues.append((node.lineno, f"unknown merge tag {where!r}", False))
                return _ANY, None
            return schema[attr], f"{path}.{attr}" if path else None
        return _ANY, None

    def _bind(self, target: nodes.Node, schema: Any, scope: dict, path: str | None = None) -> None:
        if isinstance(target, nodes.Name):
            scope[target.name] = (schema, path)
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self._bind(item, _ANY, scope)

    def _visit(self, node: nodes.Node, scope: dict) -> None:
        if isinstance(node, (nodes.Name, nodes.Getattr)) or (
                isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const)):
            if isinstance(node, nodes.Name) and node.ctx != "load":
                return
            self._schema(node, scope)
            return
        if isinstance(node, nodes.For):
            if isinstance(node.iter, (nodes.Name, nodes.Getattr, nodes.Getitem)):
                schema, path = self._schema(node.iter, scope)
            else:
                self._visit(node.iter, scope)
                schema, path = _ANY, None
            inner = dict(scope)
            self._bind(node.target, schema[1] if isinstance(schema, tuple) else _ANY, inner, path)
            for child in [*node.body, *( [node.test] if node.test else [])]:
                self._visit(child, inner)
            for child in node.else_:
                self._visit(child, scope)
            return
        if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            if isinstance(node, nodes.Assign):
                self._visit(node.node, scope)
            else:
                for child in node.body:
                    self._visit(child, scope)
            self._bind(node.target, _ANY, scope)
            return
        if isinstance(node, (nodes.Macro, nodes.CallBlock)):
            inner = dict(scope)
            if isinstance(node, nodes.Macro):
                scope[node.name] = (_ANY, None)
            for arg in node.args:
                self._bind(arg, _ANY, inner)
            for default in node.defaults:
                self._visit(default, scope)
            if isinstance(node, nodes.CallBlock):
                self._visit(node.call, scope)
            for child in node.body:
                self._visit(child, inner)
            return
        if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            self.issues.append((node.lineno, "templates cannot include, import or extend other templates", False))
            return
        for child in node.iter_child_nodes():
            self._visit(child, scope)


# ------------------------------------------------------------------------------ template files


@dataclass(frozen=True)
class _Part:
    source: str
    first_line: int  # file line of the part's first line


@dataclass(frozen=True)
class _File:
    key: str
    path: Path
    locales: dict  # locale -> {"subject": {variant|None: _Part}, "preheader": _Part|None, "text", "html"}
    issues: tuple  # TemplateIssue found while reading


def _template_path(folder: Path, key: str) -> Path:
    return folder.joinpath(*key.split("/")).with_suffix(".yaml")


def _folders(search_paths: list[Path] | None) -> list[Path]:
    folders = [Path(p) for p in (search_paths or [])]
    if not any(_same_dir(p, SHIPPED_TEMPLATES) for p in folders):
        folders.append(SHIPPED_TEMPLATES)
    return folders


@lru_cache(maxsize=64)
def _folders_cached(search_paths: tuple[Path, ...]) -> tuple[Path, ...]:
    return tuple(_folders(list(search_paths) or None))


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _find(key: str, search_paths: list[Path] | None) -> Path | None:
    """Where a template lives: the first search folder holding it (a stat per folder, so a new
    override is seen at once; the folder list itself is resolved once)."""
    for folder in _folders_cached(tuple(search_paths or ())):
        path = _template_path(folder, key)
        if path.is_file():
            return path
    return None


def _part_from_node(node: yaml.Node) -> _Part | None:
    if not isinstance(node, yaml.ScalarNode):
        return None
    block = node.style in ("|", ">")
    return _Part(str(node.value), node.start_mark.line + 1 + (1 if block else 0))


def _load_file(key: str, path: Path) -> _File:
    stat = path.stat()
    return _load_file_cached(key, str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _load_file_cached(key: str, path_text: str, _mtime: int, _size: int) -> _File:
    path = Path(path_text)
    issues: list[TemplateIssue] = []
    locales: dict = {}

    def issue(message: str, locale: str | None = None, part: str | None = None, line: int | None = None):
        issues.append(TemplateIssue(key, message, locale, part, None, str(path), line))

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        issue(f"cannot read the file: {exc}")
        return _File(key, path, locales, tuple(issues))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        issue(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", line=mark.line + 1 if mark else None)
        return _File(key, path, locales, tuple(issues))
    if not isinstance(root, yaml.MappingNode):
        issue("expected a mapping of locales (en, ja, ko, uk, zh) to subject, preheader, text and html")
        return _File(key, path, locales, tuple(issues))
    for key_node, value_node in root.value:
        locale = str(key_node.value)
        line = key_node.start_mark.line + 1
        if locale == "description":
            continue
        if locale not in LOCALES:
            issue(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}", line=line)
            continue
        if not isinstance(value_node, yaml.MappingNode):
            issue("expected subject, preheader, text and html", locale, line=line)
            continue
        entry: dict = {"subject": {}, "preheader": None, "text": None, "html": None}
        for part_key, part_node in value_node.value:
            name = str(part_key.value)
            pline = part_key.start_mark.line + 1
            if name not in PARTS:
                issue(f"unknown part {name!r}; expected one of {', '.join(PARTS)}", locale, line=pline)
                continue
            if name == "subject" and isinstance(part_node, yaml.MappingNode):
                for variant_node, subject_node in part_node.value:
                    part = _part_from_node(subject_node)
                    if part is None:
                        issue(f"subject variant {variant_node.value!r} must be text", locale, name, pline)
                    else:
                        entry["subject"][str(variant_node.value)] = part
                continue
            part = _part_from_node(part_node)
            if part is None:
                issue(f"{name} must be text", locale, name, pline)
            elif name == "subject":
                entry["subject"][None] = part
            else:
                entry[name] = part
        for required in ("subject", "text", "html"):
            if not entry[required]:
                issue(f"the {required} is missing", locale, required, line)
        locales[locale] = entry
    if "en" not in locales:
        issue("an English ('en') variant is required")
    return _File(key, path, locales, tuple(issues))


@lru_cache(maxsize=2048)
def _compile(source: str, html: bool, filename: str):
    """(template, issues) for one part; issues are (line, message, unsafe)."""
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        tree = env.parse(source, name=filename, filename=filename)
    except TemplateSyntaxError as exc:
        return None, ((exc.lineno, f"syntax error: {exc.message}", False),)
    issues = tuple(_TagChecker(env).check(tree))
    if issues:
        return None, issues
    code = env.compile(tree, name=filename, filename=filename)
    return env.template_class.from_code(env, code, env.make_globals(None)), ()


def _part_filename(path: Path, locale: str, part: str, variant: str | None) -> str:
    return f"{path}#{locale}.{part}" + (f".{variant}" if variant else "")


def _issues_of_file(f: _File) -> list[TemplateIssue]:
    out = list(f.issues)
    for locale, entry in f.locales.items():
        parts = [("subject", v, p) for v, p in entry["subject"].items()]
        parts += [(name, None, entry[name]) for name in ("preheader", "text", "html") if entry[name]]
        for name, variant, part in parts:
            _, issues = _compile(part.source, name == "html", _part_filename(f.path, locale, name, variant))
            label = name if variant is None else f"subject {variant}"
            for line, message, _unsafe in issues:
                out.append(TemplateIssue(f.key, message, locale, label, line, str(f.path),
                                         part.first_line + (line or 1) - 1))
    return out


def check_templates(keys: set[str] | list[str], search_paths: list[Path] | None = None) -> list[TemplateIssue]:
    """Problems with the templates ``keys`` name: a key without a file, a file without English, YAML or
    Jinja syntax errors, unknown merge tags, private attribute access. Empty when all is well."""
    issues: list[TemplateIssue] = []
    for key in sorted(set(keys)):
        path = _find(key, search_paths)
        if path is None:
            looked = ", ".join(str(_template_path(f, key)) for f in _folders(search_paths))
            issues.append(TemplateIssue(key, f"no template file (looked for {looked})"))
            continue
        issues.extend(_issues_of_file(_load_file(key, path)))
    return issues


# ------------------------------------------------------------------------------ layout and footer


@lru_cache(maxsize=1)
def _layout() -> tuple[dict, Any]:
    """The footer texts and the compiled HTML frame (shipped folder only: not overridable)."""
    footer = yaml.safe_load((_LAYOUT_DIR / "footer.yaml").read_text(encoding="utf-8"))
    frame = _HTML_ENV.from_string((_LAYOUT_DIR / "email.html").read_text(encoding="utf-8"))
    return footer, frame


def _footer_value(context: dict, path: str, required: bool, key: str, locale: str) -> str | None:
    holder: Any = context
    for part in path.split("."):
        holder = holder.get(part) if isinstance(holder, dict) else None
    if _is_empty(holder):
        if required:
            raise TemplateError(f"template {key} ({locale}, footer): merge tag {path!r} has no value - "
                                f"every commercial message needs it", template=key, locale=locale,
                                part="footer", tag=path)
        return None
    return str(holder).strip()


def _footer(context: dict, locale: str, category: str, key: str) -> tuple[str, Markup]:
    texts_all, _ = _layout()
    texts = texts_all.get(locale) or texts_all["en"]
    commercial = category == "commercial"
    product = _footer_value(context, "product.name", False, key, locale) or \
        _footer_value(context, "sender.name", False, key, locale) or ""
    sender = _footer_value(context, "sender.name", False, key, locale)
    address = _footer_value(context, "sender.postal_address", commercial, key, locale)
    unsubscribe = _footer_value(context, "links.unsubscribe", commercial, key, locale)
    preferences = _footer_value(context, "links.preferences", False, key, locale)
    why = (texts["why_commercial"] if commercial else texts["why_transactional"]).format(product=product)
    postal = None
    if address:
        postal = address if not sender or address.startswith(sender) else f"{sender} · {address}"

    text_lines = ["-- ", why]
    html_rows: list[Markup] = [escape(why)]
    if commercial:
        text_lines.append(f"{texts['unsubscribe']}: {_safe_url(unsubscribe)}")
        links = [_g_link(unsubscribe, texts["unsubscribe"])]
        if preferences:
            text_lines.append(f"{texts['preferences']}: {_safe_url(preferences)}")
            links.append(_g_link(preferences, texts["preferences"]))
        html_rows.append(Markup(" &nbsp;|&nbsp; ").join(links))
        html_rows.append(Markup('<span style="color:#6b7280;">{}</span>').format(_safe_url(unsubscribe)))
    if postal:
        text_lines.append(postal)
        html_rows.append(escape(postal))
    html = Markup("").join(Markup('<p style="margin:0 0 8px 0;">{}</p>').format(row) for row in html_rows)
    return "\n".join(text_lines), html


# ------------------------------------------------------------------------------ rendering

_EMPTY_P = re.compile(r"<p>\s*(?:<strong>\s*</strong>)?\s*</p>\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _one_line(text: str) -> str:
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return " ".join(text.split())


def _tidy_text(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _error_line(exc: BaseException, filename: str) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_part(f: _File, locale: str, part_name: str, variant: str | None, part: _Part,
                 context: dict) -> str:
    filename = _part_filename(f.path, locale, part_name, variant)
    template, issues = _compile(part.source, part_name == "html", filename)
    where_part = part_name if variant is None else f"subject {variant}"
    if issues:
        line, message, unsafe = issues[0]
        cls = TemplateSecurityError if unsafe else TemplateError
        raise cls(f"template {f.key} ({locale}, {where_part}, line {line}; "
                  f"{f.path}:{part.first_line + (line or 1) - 1}): {message}",
                  template=f.key, locale=locale, part=part_name, line=line)
    try:
        return template.render(context)
    except (JinjaTemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        line = _error_line(exc, filename)
        cls = TemplateSecurityError if isinstance(exc, SecurityError) else TemplateError
        tag = None
        match = re.search(r"merge tag '([^']+)'", str(exc))
        if match:
            tag = match.group(1)
        at = f", line {line}; {f.path}:{part.first_line + line - 1}" if line else f"; {f.path}"
        raise cls(f"template {f.key} ({locale}, {where_part}{at}): {exc}", template=f.key, locale=locale,
                  part=part_name, line=line, tag=tag) from exc


def render_message(template_key: str, locale: str | None, context: Mapping[str, Any], *,
                   subject_variant: str | None = None, category: str = "commercial",
                   search_paths: list[Path] | None = None,
                   fallbacks: Mapping[str, Mapping[str, str]] | None = None,
                   open_pixel: str | None = None) -> RenderedMessage:
    """Render one message: subject, preheader, plain text and HTML, in the reader's locale.

    ``subject_variant`` picks a subject variant (default: ``variant.subject`` of the context, then
    the template's first subject); an unknown variant falls back to the first and
    :attr:`RenderedMessage.subject_variant` tells which was used. ``category`` is ``commercial``
    (unsubscribe footer) or ``transactional``. ``fallbacks`` are the playbook's per-tag fallbacks.
    ``open_pixel`` is the URL of the open-tracking pixel: a 1x1 image at the end of the HTML part
    (the plain-text part gets nothing).
    """
    if category not in CATEGORIES:
        raise TemplateError(f"unknown message category {category!r}; expected commercial or transactional")
    path = _find(template_key, search_paths)
    if path is None:
        raise TemplateError(f"no template {template_key!r} (looked in "
                            f"{', '.join(str(p) for p in _folders(search_paths))})", template=template_key)
    f = _load_file(template_key, path)
    wanted = resolve_locale(locale)
    if wanted not in f.locales:
        wanted = "en"
    if wanted not in f.locales or any(i.locale in (None, wanted) for i in f.issues):
        problem = next((i for i in f.issues if i.locale in (None, wanted)), None)
        raise TemplateError(f"template {template_key}: {problem or 'no English variant'}",
                            template=template_key, locale=wanted)
    entry = f.locales[wanted]

    requested = subject_variant
    if requested is None:
        variant = context.get("variant") if isinstance(context, Mapping) else None
        if isinstance(variant, Mapping) and not _is_empty(variant.get("subject")):
            requested = str(variant["subject"])
    subjects: dict = entry["subject"]
    if None in subjects:
        used = None
    else:
        used = requested if requested in subjects else next(iter(subjects))

    ctx: dict = {str(k): _wrap(v, str(k)) for k, v in dict(context).items()}
    _apply_fallbacks(ctx, fallbacks, wanted)
    customer = context.get("customer") if isinstance(context, Mapping) else None
    requested_locale = customer.get("locale") if isinstance(customer, Mapping) else None
    ctx["__winback_locale"] = wanted
    ctx["__winback_format_locale"] = _format_locale(wanted, requested_locale if isinstance(
        requested_locale, str) else locale)

    subject = _one_line(_render_part(f, wanted, "subject", used, subjects[used], ctx))
    if not subject:
        raise TemplateError(f"template {template_key} ({wanted}, subject): the subject is empty",
                            template=template_key, locale=wanted, part="subject")
    preheader = ""
    if entry["preheader"] is not None:
        preheader = _one_line(_render_part(f, wanted, "preheader", None, entry["preheader"], ctx))
    body_text = _tidy_text(_render_part(f, wanted, "text", None, entry["text"], ctx))
    body_html = Markup(_EMPTY_P.sub("", _render_part(f, wanted, "html", None, entry["html"], ctx)))
    footer_text, footer_html = _footer(ctx, wanted, category, template_key)

    _, frame = _layout()
    html = frame.render(
        lang=wanted, subject=subject, preheader=preheader, body=body_html, footer=footer_html,
        pixel=_safe_url(open_pixel) if open_pixel else None)
    text = f"{body_text}\n\n{footer_text}\n"
    return RenderedMessage(template_key, wanted, subject, used, preheader, text, html)


# ------------------------------------------------------------------------------ sample context

_SAMPLES: dict[str, dict[str, Any]] = {
    "en": {"first_name": "Maya", "name": "Maya Okafor", "company": "Northwind Studio", "country": "US",
           "locale": "en-US", "features": ["Shared dashboards", "Scheduled reports", "Slack alerts"],
           "purchases": [("Pro plan (annual)", 28800)], "requested": "HubSpot integration",
           "shipped": [("HubSpot integration", "integration"), ("Faster dashboard loading", "improvement"),
                       ("Guided setup tutorials", "onboarding")],
           "competitor": "Tableau", "items": [("Pro plan - 12 months", 1, 28800)], "currency": "USD"},
    "ja": {"first_name": "花子", "name": "佐藤 花子", "company": "株式会社ミドリ", "country": "JP",
           "locale": "ja-JP", "features": ["共有ダッシュボード", "定期レポート", "Slack通知"],
           "purchases": [("プロプラン（年額）", 32000)], "requested": "HubSpot連携",
           "shipped": [("HubSpot連携", "integration"), ("ダッシュボードの高速化", "improvement"),
                       ("ガイド付きセットアップ", "onboarding")],
           "competitor": "Tableau", "items": [("プロプラン 12か月", 1, 32000)], "currency": "JPY"},
    "ko": {"first_name": "민지", "name": "김민지", "company": "한빛소프트", "country": "KR",
           "locale": "ko-KR", "features": ["공유 대시보드", "예약 보고서", "Slack 알림"],
           "purchases": [("프로 요금제(연간)", 390000)], "requested": "HubSpot 연동",
           "shipped": [("HubSpot 연동", "integration"), ("대시보드 속도 개선", "improvement"),
                       ("단계별 설정 가이드", "onboarding")],
           "competitor": "Tableau", "items": [("프로 요금제 12개월", 1, 390000)], "currency": "KRW"},
    "uk": {"first_name": "Олена", "name": "Олена Коваль", "company": "Студія Світанок", "country": "UA",
           "locale": "uk-UA", "features": ["Спільні дашборди", "Звіти за розкладом", "Сповіщення в Slack"],
           "purchases": [("Тариф Pro (річний)", 1190000)], "requested": "Інтеграція з HubSpot",
           "shipped": [("Інтеграція з HubSpot", "integration"), ("Швидші дашборди", "improvement"),
                       ("Покрокові посібники", "onboarding")],
           "competitor": "Tableau", "items": [("Тариф Pro, 12 місяців", 1, 1190000)], "currency": "UAH"},
    "zh": {"first_name": "小明", "name": "王小明", "company": "云帆科技", "country": "CN",
           "locale": "zh-Hans-CN", "features": ["共享仪表板", "定时报告", "Slack 提醒"],
           "purchases": [("专业版（年付）", 199900)], "requested": "HubSpot 集成",
           "shipped": [("HubSpot 集成", "integration"), ("仪表板加载更快", "improvement"),
                       ("分步入门教程", "onboarding")],
           "competitor": "Tableau", "items": [("专业版 12个月", 1, 199900)], "currency": "CNY"},
}

_STRATEGY = {
    "en": ("Discount, lower tier, annual-plan incentive", "Come back with 25% off for 3 months - or try our lighter plan"),
    "ja": ("割引、下位プラン、年額プラン特典", "3か月間25%オフで戻ってきませんか"),
    "ko": ("할인, 하위 요금제, 연간 요금제 혜택", "3개월간 25% 할인으로 돌아오세요"),
    "uk": ("Знижка, легший тариф, бонус за річний план", "Повертайтеся зі знижкою 25% на 3 місяці"),
    "zh": ("折扣、低档套餐、年付优惠", "回来享3个月25%折扣"),
}
_OFFER_TITLE = {"en": "25% off for 3 months", "ja": "3か月間25%オフ", "ko": "3개월간 25% 할인",
                "uk": "Знижка 25% на 3 місяці", "zh": "3个月25%折扣"}


def sample_context(locale: str = "en") -> dict[str, Any]:
    """A realistic, complete merge context (for previews and tests), in ``locale``."""
    loc = resolve_locale(locale)
    s = _SAMPLES[loc]
    base = "https://app.example.com"
    token = "t0k3n"
    return {
        "customer": {"id": "cus_1042", "first_name": s["first_name"], "name": s["name"],
                     "company": s["company"], "email": "maya@example.com", "plan": "pro", "plan_name": "Pro",
                     "locale": s["locale"], "country": s["country"], "since": dt.date(2023, 3, 14),
                     "tenure_months": 22},
        "product": {"name": "Acme Analytics", "url": base},
        "sender": {"name": "Acme Analytics", "address": "hello@acme.example",
                   "postal_address": "Acme Analytics Inc., 548 Market St #123, San Francisco, CA 94104, USA"},
        "reason": "price",
        "strategy": {"key": "price", "title": _STRATEGY[loc][0], "message": _STRATEGY[loc][1]},
        "features_used": list(s["features"]),
        "past_purchases": [{"name": n, "date": dt.date(2024, 11, 2), "amount_minor": a, "currency": s["currency"]}
                           for n, a in s["purchases"]],
        "requested_features": [{"key": "hubspot", "name": s["requested"], "shipped": True,
                                "shipped_at": dt.date(2026, 1, 8)}],
        "shipped_while_away": [{"name": n, "kind": k, "shipped_at": dt.date(2025, 12, 1 + 7 * i)}
                               for i, (n, k) in enumerate(s["shipped"])],
        "competitor": s["competitor"],
        "offer": {"key": "percent_25_3m", "kind": "percent_off", "title": _OFFER_TITLE[loc], "percent": 25.0,
                  "months": 3, "days": None, "free_months": None, "amount_minor": None, "currency": None,
                  "expires_at": dt.datetime(2026, 1, 29, 23, 59, tzinfo=dt.timezone.utc)},
        "coupon": {"code": "COMEBACK-7KQ2", "expires_at": dt.datetime(2026, 1, 29, 23, 59, tzinfo=dt.timezone.utc)},
        "checkout": {"items": [{"name": n, "quantity": q, "amount_minor": a} for n, q, a in s["items"]],
                     "amount_minor": sum(q * a for _, q, a in s["items"]), "currency": s["currency"]},
        "links": {"cta": f"{base}/l/{token}/cta", "unsubscribe": f"{base}/u/{token}",
                  "preferences": f"{base}/p/{token}", "survey": f"{base}/s/{token}",
                  "card_update": f"{base}/c/{token}", "booking": f"{base}/b/{token}",
                  "referral": f"{base}/r/{token}", "tutorials": f"{base}/l/{token}/tutorials"},
        "variant": {"subject": None, "cta": None},
        "step": {"key": "reminder", "index": 0},
    }
