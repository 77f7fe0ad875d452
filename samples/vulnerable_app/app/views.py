"""HTTP handlers for the inventory demo (Flask)."""

import os
import pickle
import subprocess

import requests
import yaml
from flask import Flask, request

app = Flask(__name__)


@app.route("/calc")
def calc():
    expression = request.args.get("q", "0")
    return str(eval(expression))


@app.route("/ping")
def ping():
    host = request.args.get("host", "localhost")
    os.system("ping -c 1 " + host)
    out = subprocess.run(f"nslookup {host}", shell=True, capture_output=True)
    safe = subprocess.run(["ping", "-c", "1", host], shell=False, capture_output=True)
    return out.stdout + safe.stdout


@app.route("/import", methods=["POST"])
def import_items():
    items = pickle.loads(request.data)
    config = yaml.load(request.files["config"].read())
    trusted = yaml.safe_load("a: 1")
    return {"count": len(items), "config": config, "trusted": trusted}


@app.route("/rates")
def rates():
    try:
        resp = requests.get("https://rates.example.invalid/latest")
        return resp.json()
    except:
        return {}


@app.route("/rates/backup")
def backup_rates():
    try:
        resp = requests.get("https://backup.example.invalid/latest", timeout=5, verify=False)
        return resp.json()
    except Exception:
        pass
    return {}


def notify(message):
    """Send a notification; errors are logged, not swallowed."""
    try:
        requests.post("https://hooks.example.invalid/notify", json={"m": message}, timeout=3)
    except Exception as exc:  # noqa: BLE001 - logged below
        app.logger.warning("notify failed: %s", exc)


if __name__ == "__main__":
    app.run(host="0.0.0.0", debug=True)
