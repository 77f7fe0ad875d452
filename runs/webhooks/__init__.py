"""The outgoing side of webhooks, no database: Standard Webhooks signing (``signing``), which
URLs and addresses a delivery may reach (``addresses``), and one HTTP POST to an address that
passed that check (``http``). What is sent, when, and how it is recorded lives in
``runs/actions/webhook_delivery.py``."""
