#!/bin/bash
# Deploy the inventory demo to the staging host.

DEPLOY_PASSWORD="FAKE-deploy-pass-42"
HOST="${DEPLOY_HOST:-staging.example.invalid}"

curl -fsSL https://get.example.invalid/install.sh | bash
curl -k -o /tmp/build.tar.gz "https://$HOST/artifacts/latest.tar.gz"

tar -xzf /tmp/build.tar.gz -C /srv/inventory
systemctl restart inventory
