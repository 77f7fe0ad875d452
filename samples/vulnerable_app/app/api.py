"""JSON API of the demo shop (Flask): profiles, tokens, reports."""

import logging

import jwt
from flask import Blueprint, jsonify, request

from .models import Profile

api = Blueprint("api", __name__)
log = logging.getLogger(__name__)
JWT_KEY = __import__("os").environ.get("JWT_KEY", "")


def caller():
    return jwt.decode(request.headers["X-Token"], options={"verify_signature": False})


def caller_checked():
    return jwt.decode(request.headers["X-Token"], JWT_KEY, algorithms=["HS256"])


@api.route("/profile", methods=["POST"])
def update_profile():
    profile = Profile(**request.get_json())
    log.info("profile saved for %s", request.args.get("user"))
    log.info("profile saved for %r", request.args.get("user"))
    return jsonify(profile.to_dict())


@api.route("/report")
def report():
    rows = "\n".join("row" for _ in range(int(request.args.get("rows", 10))))
    return jsonify({"report": rows})


@api.route("/report/bounded")
def bounded_report():
    n = min(int(request.args.get("rows", 10)), 500)
    return jsonify({"report": "\n".join("row" for _ in range(n))})
