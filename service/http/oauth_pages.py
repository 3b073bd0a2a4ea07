"""The HTML pages of ``/oauth/authorize`` (:mod:`.oauth`): the consent form, the page asking
to sign in first, and the refusal of a request that cannot be sent back to its app. Written
in the person's language from the gettext catalogs; every value is escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from ..domain.i18n import Locale, translator
from ..domain.tokens import PROJECT_SCOPE


def _document(locale: Locale, title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem}button{font-size:1rem;margin-right:.5rem}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def _scope_line(locale: Locale, scope: str) -> str:
    t = translator(locale)
    if scope == "read":
        return t.gettext("read what you can read")
    if scope == "write":
        return t.gettext("write, post and change things as you")
    project = scope.removeprefix(PROJECT_SCOPE)
    return t.gettext("only in project {project}").format(project=project)


def consent(
    locale: Locale, app_name: str, scopes: Sequence[str], action: str, fields: Mapping[str, str]
) -> str:
    """The consent form: ``app_name`` asks for ``scopes``; the form posts ``fields`` (hidden)
    and ``decision`` (``allow`` or ``deny``) to ``action``."""
    t = translator(locale)
    title = t.gettext("Authorise {app}?").format(app=app_name)
    intro = t.gettext("{app} asks to use Cairn on your behalf. It will be able to:").format(
        app=app_name
    )
    items = "".join(f"<li>{escape(_scope_line(locale, s))}</li>" for s in scopes)
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )
    allow = escape(t.gettext("Allow"))
    deny = escape(t.gettext("Deny"))
    later = escape(t.gettext("You can withdraw this later from your account's authorised apps."))
    body = (
        f"<p>{escape(intro)}</p><ul>{items}</ul>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        f'<button type="submit" name="decision" value="allow">{allow}</button>'
        f'<button type="submit" name="decision" value="deny">{deny}</button></form>'
        f"<p><small>{later}</small></p>"
    )
    return _document(locale, title, body)


def sign_in_first(locale: Locale) -> str:
    """The page shown instead of the consent form to someone not signed in."""
    t = translator(locale)
    title = t.gettext("Sign in first")
    text = t.gettext(
        "An app asks to use Cairn on your behalf. Sign in to Cairn in this browser, "
        "then open this link again."
    )
    return _document(locale, title, f"<p>{escape(text)}</p>")


def refused(locale: Locale, reason: str) -> str:
    """The page for an authorization request naming no registered app (``unknown_client``)
    or a redirect URI it did not register (``bad_redirect``): never sent back to it."""
    t = translator(locale)
    title = t.gettext("This authorisation request is not valid")
    if reason == "unknown_client":
        text = t.gettext("The app asking is not registered with this Cairn.")
    else:
        text = t.gettext("The address the app asked to return to is not one it registered.")
    return _document(locale, title, f"<p>{escape(text)}</p>")
