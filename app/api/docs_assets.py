"""The Swagger UI files ``/docs`` loads, served by the app itself, so the page works
with no internet access (APIFlask's defaults load them from a CDN).

The files come from the ``flask-swagger-ui`` package, which ships Swagger UI's
``dist`` folder (with its Apache-2.0 licence, ``dist/LICENSE``) and follows Swagger
UI's releases; only its files are used here, APIFlask still renders the page.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint

#: Where the files are served; a plain Flask blueprint, so they stay out of the spec.
ASSETS_PATH = "/docs/assets"

#: Swagger UI's ``dist`` folder, as installed.
DIST_DIR = Path(str(files("flask_swagger_ui") / "dist"))

bp = Blueprint("docs_assets", __name__, static_folder=DIST_DIR, static_url_path=ASSETS_PATH)


def docs_config() -> dict[str, object]:
    """APIFlask's settings for ``/docs``: every file it loads from this app."""
    return {
        "SWAGGER_UI_CSS": f"{ASSETS_PATH}/swagger-ui.css",
        "SWAGGER_UI_BUNDLE_JS": f"{ASSETS_PATH}/swagger-ui-bundle.js",
        "SWAGGER_UI_STANDALONE_PRESET_JS": f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        "DOCS_FAVICON": f"{ASSETS_PATH}/favicon-32x32.png",
        # No badge asking swagger.io to validate the spec (the page's layout shows none
        # today; this keeps it so if the layout changes).
        "SWAGGER_UI_CONFIG": {"validatorUrl": None},
    }
