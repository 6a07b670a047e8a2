from flask import Blueprint, g, jsonify, redirect, request, url_for

from flaskr.auth import login_required
from flaskr.db import get_db

bp = Blueprint("blog", __name__)


@bp.route("/")
def index():
    posts = get_db().execute(
        "SELECT p.title, p.body, u.username FROM post p JOIN user u ON p.author_id = u.id ORDER BY p.id"
    ).fetchall()
    return jsonify([dict(post) for post in posts])


@bp.route("/create", methods=("POST",))
@login_required
def create():
    db = get_db()
    db.execute("INSERT INTO post (title, body, author_id) VALUES (?, ?, ?)",
               (request.form["title"], request.form["body"], g.user["id"]))
    db.commit()
    return redirect(url_for("blog.index"))
