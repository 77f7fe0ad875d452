"""Background jobs of the storefront. Planted: weak token randomness. Not problems: shell=0 /
None (no shell is started), and two reviewed queries under `# nosec` / `# noqa: S608`."""

import random
import secrets
import subprocess


def reset_token():
    return "".join(random.choice("0123456789abcdef") for _ in range(32))


def shuffle_banner(banners):
    return random.choice(banners)


def session_token():
    return secrets.token_urlsafe(32)


def archive(folder):
    # subprocess only tests truthiness: shell=0 / None / [] never start a shell.
    subprocess.run(["tar", "czf", "out.tgz", folder], shell=0, check=True)
    subprocess.run(["tar", "tzf", "out.tgz"], shell=None, check=True)


def legacy_lookup(conn, sku):
    # Reviewed: sku is validated against ^[A-Z0-9]{8}$ upstream.
    return conn.execute("SELECT * FROM items WHERE sku = '%s'" % sku)  # nosec B608


def legacy_count(conn, table):
    return conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
