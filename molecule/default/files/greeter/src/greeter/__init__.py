"""Second test app: an installable package with an app factory (greeter:create_app()).

Besides the greeting, it shows the tests what Nginx hands to an app:
  /headers   the request headers the app received, as JSON
  /ws-headers the same for a WebSocket handshake (Werkzeug routes those only to
             websocket rules, and answers 400 elsewhere)
  /stream    n lines, gap_ms apart, produced while the response is sent;
             accel=no|yes sends X-Accel-Buffering with that value
  /own-csp   a page with its own Content-Security-Policy
"""

import os
import time

from flask import Flask, Response, jsonify, request


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"{os.environ.get('GREETING', 'Hello')} from greeter\n"

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", release=os.environ.get("FLASKAPP_RELEASE", "dev"))

    @app.get("/headers")
    def headers():
        return jsonify(headers=dict(request.headers), remote_addr=request.remote_addr)

    app.add_url_rule("/ws-headers", "ws_headers", headers, websocket=True)

    @app.get("/stream")
    def stream():
        count = min(int(request.args.get("n", "3")), 20)
        gap = min(int(request.args.get("gap_ms", "500")), 5000) / 1000

        def lines():
            for i in range(count):
                if i:
                    time.sleep(gap)
                yield f"line {i} at {time.time():.3f}\n"

        response = Response(lines(), mimetype="text/plain")
        if request.args.get("accel") in ("no", "yes"):
            response.headers["X-Accel-Buffering"] = request.args["accel"]
        return response

    @app.get("/own-csp")
    def own_csp():
        response = Response("a page with its own policy\n", mimetype="text/plain")
        response.headers["Content-Security-Policy"] = "default-src 'self' https://cdn.greeter.test"
        return response

    return app
