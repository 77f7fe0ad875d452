"""Report helpers for the inventory demo."""

from urllib.request import urlopen


def fetch_price_list(url):
    # TODO: cache the price list instead of fetching it on every report
    with urlopen(url) as resp:
        return resp.read().decode()


def classify(item):
    # FIXME: thresholds are duplicated from the pricing service
    label = "unknown"
    if item.get("qty") is None:
        label = "missing"
    elif item["qty"] == 0 and item.get("backorder"):
        label = "backordered"
    elif item["qty"] == 0:
        label = "out"
    elif item["qty"] < 5 or item.get("low_flag"):
        label = "low"
    elif item["qty"] < 20 and item.get("seasonal"):
        label = "seasonal-low"
    elif item["qty"] < 20:
        label = "ok"
    elif item["qty"] < 100 and item.get("bulky"):
        label = "bulky"
    elif item["qty"] < 100:
        label = "good"
    elif item.get("archived") or item.get("hidden"):
        label = "hidden"
    else:
        label = "plenty"
    if item.get("price") and item["price"] > 1000 and label != "hidden":
        label += "-premium"
    return label


def summarize(rows):
    totals = {}
    for row in rows:
        if row.get("active"):
            for tag in row.get("tags", []):
                if tag.startswith("cat:"):
                    while tag.endswith(" "):
                        if len(tag) > 4:
                            tag = tag[:-1]
                        else:
                            break
                    totals[tag] = totals.get(tag, 0) + 1
    return totals


def build_report(rows, currency="EUR"):
    """Render the stock report as plain text (one long function on purpose)."""
    lines = []
    lines.append("section 1: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 2: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 3: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 4: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 5: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 6: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 7: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 8: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 9: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 10: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 11: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 12: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 13: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 14: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 15: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 16: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 17: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 18: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 19: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 20: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 21: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 22: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 23: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 24: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 25: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 26: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 27: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 28: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 29: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 30: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 31: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 32: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 33: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 34: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 35: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 36: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 37: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 38: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 39: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 40: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 41: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 42: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 43: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 44: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 45: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 46: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 47: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 48: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 49: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 50: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 51: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 52: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 53: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 54: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 55: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 56: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 57: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 58: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 59: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 60: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 61: " + str(len(rows)) + " rows in " + currency)
    lines.append("section 62: " + str(len(rows)) + " rows in " + currency)
    return "\n".join(lines)


# --- helpers the import/export jobs call with values read from uploaded manifests ---
import random  # noqa: E402
import secrets  # noqa: E402
import tarfile  # noqa: E402

from lxml import etree  # noqa: E402

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
