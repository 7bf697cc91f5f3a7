"""Forms as a browser submits them, read from a rendered page: which methods
each can send with (its own, and any button's formmethod) and which fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

TOKEN = "csrfmiddlewaretoken"
FIELDS = {"input", "select", "textarea", "button"}


@dataclass
class Form:
    methods: set[str]
    fields: list[str] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.open = Form({found.get("method", "get").lower() or "get"})
            self.forms.append(self.open)
        elif self.open is not None and tag in FIELDS:
            if found.get("formmethod"):
                self.open.methods.add(found["formmethod"].lower())
            if found.get("name"):
                self.open.fields.append(found["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.open = None


def forms_of(page: str) -> list[Form]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def tokens_in_urls(page: str) -> list[Form]:
    """Forms that can send the CSRF token in a URL: a GET (by the form or by a
    button's formmethod) with the token among its fields."""
    return [f for f in forms_of(page) if "get" in f.methods and TOKEN in f.fields]
