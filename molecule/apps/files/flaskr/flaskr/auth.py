import functools

from flask import Blueprint, abort, g, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from flaskr.db import get_db

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.route("/register", methods=("POST",))
def register():
    username, password = request.form["username"], request.form["password"]
    db = get_db()
    try:
        db.execute("INSERT INTO user (username, password) VALUES (?, ?)",
                   (username, generate_password_hash(password)))
        db.commit()
    except db.IntegrityError:
        return f"User {username} is already registered.", 409
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=("POST",))
def login():
    username, password = request.form["username"], request.form["password"]
    user = get_db().execute("SELECT * FROM user WHERE username = ?", (username,)).fetchone()
    if user is None or not check_password_hash(user["password"], password):
        return "Incorrect username or password.", 403
    session.clear()
    session["user_id"] = user["id"]
    return redirect(url_for("index"))


@bp.before_app_request
def load_logged_in_user():
    user_id = session.get("user_id")
    g.user = None if user_id is None else get_db().execute(
        "SELECT * FROM user WHERE id = ?", (user_id,)).fetchone()


def login_required(view):
    @functools.wraps(view)
    def wrapped_view(**kwargs):
        if g.user is None:
            abort(401)
        return view(**kwargs)
    return wrapped_view
