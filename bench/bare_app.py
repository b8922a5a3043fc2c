"""The ceiling of the stack: a Flask endpoint that answers 202 and does nothing else, served by
the same gunicorn settings as the bridge (``gunicorn -c python:wpf_bridge.gunicorn_conf``)."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def accept():
    return jsonify(success=True), 202
