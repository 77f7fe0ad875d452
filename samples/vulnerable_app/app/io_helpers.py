"""Helpers the import/export jobs call with values read from uploaded manifests."""

import random
import secrets
import tarfile
from urllib.request import urlopen

from lxml import etree

LOOKUP_SQL = "SELECT qty FROM items WHERE sku = '{}'"
COUNT_SQL = "SELECT COUNT(*) FROM items WHERE sku = ?"
CATALOG = etree.parse("catalog.xml")
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def qty_for(conn, sku):
    query = LOOKUP_SQL.format(sku)
    return conn.execute(query).fetchone()


def count_for(conn, sku):
    return conn.execute(COUNT_SQL, (sku,)).fetchone()


def unpack_backup(name):
    with tarfile.open("/var/backups/" + name) as tar:
        return tar.getnames()


def read_backup(path):
    with open(path, "rb") as fh:
        return fh.read()


def fetch_manifest(host):
    return _download("https://" + host + "/manifest.json")


def _download(address):
    with urlopen(address, timeout=10) as resp:
        return resp.read()


def price_of(sku):
    return CATALOG.xpath("//item[@sku='%s']/price/text()" % sku)


def price_of_safe(sku):
    return CATALOG.xpath("//item[@sku=$sku]/price/text()", sku=sku)


def parse_feed(data):
    return etree.fromstring(data)


def parse_feed_safe(data):
    return etree.fromstring(data, SAFE_PARSER)


def parse_feed_with_entities(data):
    parser = etree.XMLParser(resolve_entities=True)
    return etree.fromstring(data, parser)


def build_rule(expression):
    return compile(expression, "<rule>", "eval")


def build_default_rule():
    return compile("qty > 0", "<rule>", "eval")


def new_batch_id():
    return random.randint(100000, 999999)


def retry_delay(attempt):
    return min(30, 2**attempt + random.random())


def new_api_token():
    return secrets.token_urlsafe(32)
