"""mkdocs hook for the user guide (named in mkdocs.yml, left out of the site).

The guide's pages live in docs/guide/ beside docs/screenshots/, so the site's root has no page of its own: this
writes a site/index.html that sends the reader to the guide's first page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_ROOT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EdgeStudio user guide</title>
<meta http-equiv="refresh" content="0; url=guide/index.html"></head>
<body><p><a href="guide/index.html">EdgeStudio user guide</a></p></body></html>
"""


def on_post_build(config: Any, **kwargs: Any) -> None:
    root = Path(config["site_dir"]) / "index.html"
    if not root.exists():
        root.write_text(_ROOT_PAGE, encoding="utf-8")
