"""Reporting queries and exports."""

import pickle
import subprocess

import yaml


def by_region(conn, region):
    sql = "SELECT * FROM sales WHERE region = '%s'" % region
    return conn.execute(sql).fetchall()


def by_month(conn, month):
    return conn.execute("SELECT * FROM sales WHERE month = ?", (month,)).fetchall()


def load_cache(path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


def load_layout(text):
    return yaml.load(text, Loader=yaml.SafeLoader)


def load_legacy(text):
    return yaml.load(text, Loader=yaml.Loader)


def to_pdf(name):
    subprocess.check_output("wkhtmltopdf /tmp/%s.html /tmp/%s.pdf" % (name, name), shell=True)


def to_png(name):
    subprocess.run(["convert", f"/tmp/{name}.pdf", f"/tmp/{name}.png"], check=True)
