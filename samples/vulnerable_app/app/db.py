"""Data access for the inventory demo."""

import hashlib
import sqlite3


def connect(path="inventory.db"):
    return sqlite3.connect(path)


def find_item(conn, name):
    cur = conn.cursor()
    cur.execute(f"SELECT id, name, qty FROM items WHERE name = '{name}'")
    return cur.fetchone()


def find_by_owner(conn, owner):
    query = "SELECT id FROM items WHERE owner = '" + owner + "'"
    cur = conn.cursor()
    cur.execute(query)
    return cur.fetchall()


def count_in_category(conn, category):
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM items WHERE category = '%s'" % category)
    return cur.fetchone()[0]


def find_item_safely(conn, name):
    cur = conn.cursor()
    cur.execute("SELECT id, name, qty FROM items WHERE name = ?", (name,))
    return cur.fetchone()


def password_digest(password):
    return hashlib.md5(password.encode()).hexdigest()


def file_checksum(data):
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def export_csv(conn, path):
    out = open(path, "w")
    for row in conn.execute("SELECT id, name, qty FROM items"):
        out.write(",".join(str(v) for v in row) + "\n")


def read_header(path):
    with open(path) as fh:
        return fh.readline()


def add_tags(item_id, tags=[]):
    tags.append(f"item:{item_id}")
    return tags


def create_item(conn, name, qty, price, category, owner, location, supplier, notes):
    conn.execute(
        "INSERT INTO items (name, qty, price, category, owner, location, supplier, notes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, qty, price, category, owner, location, supplier, notes),
    )
