"""An "OCI" content view for mitmweb and the mitmproxy console: manifests, indexes and configs told the way the
report tells them (analyzers/views.py), chosen over the JSON view for the OCI and Docker media types."""

from __future__ import annotations

from mitmproxy import contentviews
from mitmproxy.contentviews import Contentview, Metadata
from ocitrace.analyzers.endpoints import default_table
from ocitrace.analyzers.views import manifest_text, shows

# mitmproxy's JSON view gives every `+json` type priority 1; the OCI view wins over it where it can decode.
PRIORITY = 2.0


class OCIView(Contentview):
    name = "OCI"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        url_digest = tag = header = None
        request = getattr(metadata.flow, "request", None)
        if request is not None:  # the digest the URL names (a GET's, or a PUT's by digest), and a tag's name
            classification = default_table().classify(request.method, request.path.split("?", 1)[0])
            url_digest, tag = classification.digest, classification.tag
        message = metadata.http_message
        if message is not None and message is not request:  # an answer: its Docker-Content-Digest
            header = message.headers.get("docker-content-digest")
        return manifest_text(data, metadata.content_type, url_digest=url_digest, header_digest=header, tag=tag)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if not data or not shows(metadata.content_type):
            return -1
        try:  # a body it cannot decode goes to the views that can (JSON, raw)
            manifest_text(data, metadata.content_type)
        except ValueError:
            return -1
        return PRIORITY


def register() -> None:
    """Add the view to mitmproxy's (once: a second add of the same name replaces the first)."""
    contentviews.add(OCIView())
