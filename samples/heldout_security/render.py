"""Email and page rendering."""

from flask import Flask, render_template, render_template_string, request
from jinja2 import Environment
from markupsafe import Markup, escape

app = Flask(__name__)
app.config["SECRET_KEY"] = "dev-2f8a9c7d1e3b"
env = Environment(autoescape=False)


@app.route("/greet")
def greet():
    who = request.args.get("who", "there")
    return render_template_string("Hello {{ who }}!", who=who)


@app.route("/card")
def card():
    title = request.args.get("title", "")
    tpl = "<h2>" + title + "</h2>"
    return render_template_string(tpl)


@app.route("/profile")
def profile():
    bio = request.form.get("bio", "")
    return render_template("profile.html", bio=Markup(bio))


def footer(name):
    return Markup("<small>{}</small>").format(escape(name))
