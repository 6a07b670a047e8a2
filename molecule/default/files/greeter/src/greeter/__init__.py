"""Second test app: an installable package with an app factory (greeter:create_app())."""

import os

from flask import Flask, jsonify


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"{os.environ.get('GREETING', 'Hello')} from greeter\n"

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", release=os.environ.get("FLASKAPP_RELEASE", "dev"))

    return app
