"""A plain module (no package): Flask's instance folder is instance/ beside it.

  /healthz   200
  /note      GET: the note kept in the instance folder; POST: replace it
  /meminfo   the first line of /proc/meminfo (hidden by the default sandbox)
"""

import os

from flask import Flask, request

app = Flask(__name__)
os.makedirs(app.instance_path, exist_ok=True)
NOTE = os.path.join(app.instance_path, "note.txt")


@app.route("/healthz")
def healthz():
    return {"status": "ok", "release": os.environ.get("FLASKAPP_RELEASE", "dev")}


@app.route("/note", methods=("GET", "POST"))
def note():
    if request.method == "POST":
        with open(NOTE, "w") as f:
            f.write(request.get_data(as_text=True))
    try:
        with open(NOTE) as f:
            return f.read()
    except FileNotFoundError:
        return "", 404


@app.route("/meminfo")
def meminfo():
    with open("/proc/meminfo") as f:
        return f.readline()
