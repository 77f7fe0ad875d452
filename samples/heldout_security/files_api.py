"""Download/upload endpoints of a small file-sharing service (Flask)."""

import os
import tarfile
import tempfile

from flask import Flask, abort, request, send_file, send_from_directory

app = Flask(__name__)
UPLOADS = "/var/lib/share/uploads"


@app.get("/download")
def download():
    name = request.args.get("name", "")
    full = os.path.join(UPLOADS, name)
    return send_file(full)


@app.get("/download/safe")
def download_safe():
    return send_from_directory(UPLOADS, request.args["name"])


@app.post("/restore")
def restore():
    archive = request.files["backup"]
    tmp = tempfile.mktemp(suffix=".tar")
    archive.save(tmp)
    with tarfile.open(tmp) as tar:
        tar.extractall(UPLOADS)
    return {"ok": True}


@app.get("/thumb")
def thumb():
    size = int(request.args.get("size", "64"))
    if size > 512:
        abort(400)
    return {"size": size}
