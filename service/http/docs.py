"""``/docs``: the API's reference for people, Swagger UI over ``/openapi.json``.

The assets come from the ``swagger-ui-py`` package (Swagger UI 5, which reads OpenAPI 3.1),
served from this process: no CDN, so the page works offline. The online validator badge is
off for the same reason.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

_ASSETS: Final = Path(str(importlib.resources.files("swagger_ui") / "static"))
_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{root}/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false
}});
</script>
</body>
</html>
"""


def routes(title: str) -> list[BaseRoute]:
    """The page and its assets."""

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(_PAGE.format(title=title, root=root))

    return [
        Route("/docs", page),
        Mount("/docs/assets", StaticFiles(directory=_ASSETS), name="docs-assets"),
    ]
