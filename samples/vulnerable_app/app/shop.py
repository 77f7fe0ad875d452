"""Storefront handlers (Flask). Planted: template injection, path traversal, SSRF, open
redirect, CSRF exemption, a config secret, unescaped markup."""

import requests
from flask import Flask, Markup, redirect, render_template_string, request, send_file, url_for
from flask_wtf.csrf import CSRFProtect
from werkzeug.utils import secure_filename

app = Flask(__name__)
app.config["SECRET_KEY"] = "f3c9a1e0b7d24c51"
app.config["SESSION_COOKIE_NAME"] = "shop"
csrf = CSRFProtect(app)


@app.route("/hello")
def hello():
    name = request.args.get("name", "guest")
    return render_template_string("<p>Hello " + name + "</p>")


@app.route("/invoice")
def invoice():
    filename = request.args["file"]
    return send_file("/srv/invoices/" + filename)


@app.route("/invoice/safe")
def invoice_safe():
    filename = secure_filename(request.args["file"])
    return send_file("/srv/invoices/" + filename)


@app.route("/preview")
def preview():
    target = request.args.get("url")
    page = requests.get(target, timeout=5)
    return page.text


@app.route("/login/done")
def login_done():
    return redirect(request.args.get("next", "/"))


@app.route("/logout")
def logout():
    return redirect(url_for("hello"))


@app.route("/webhook", methods=["POST"])
@csrf.exempt
def webhook():
    return {"ok": True}


def badge(user):
    return Markup("<b>%s</b>" % user.nickname)
