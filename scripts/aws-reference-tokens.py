#!/usr/bin/env python3
"""Reference RDS IAM auth tokens from botocore, for pgmi-upload's AWS signer.

pgmi-upload builds the token that `aws rds generate-db-auth-token` (botocore's
`generate_db_auth_token`) builds, and must build it byte for byte the same: the same
parameter order, the same percent-encoding, the same signature. This script asks botocore
for the token of a few cases at a frozen clock and writes them, with their inputs, to
pgmi-upload/src/cloud/aws/botocore_tokens.json.

Run it from the repository root (needs `pip install botocore`; no network, no AWS account):

    python3 scripts/aws-reference-tokens.py            # rewrite the fixture
    python3 scripts/aws-reference-tokens.py --check    # exit 1 if the fixture differs

CI does not run this: the Rust unit tests (cloud::aws) and the live test
(tests/tests/cloud_aws.rs) compare against the recorded JSON, so they need no Python.
Rerun it only to add a case, or to confirm that a newer botocore still agrees.

The credentials below are made up; none of them works anywhere.
"""

import datetime
import json
import pathlib
import sys

import botocore
import botocore.auth
import botocore.session

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / (
    "pgmi-upload/src/cloud/aws/botocore_tokens.json"
)

# A session token shaped like the ones STS hands out: long, with '/', '+' and '='.
SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/"
    "with+slashes/and+plus==FAKE"
)

# The live test (tests/tests/cloud_aws.rs) uses the cases whose host is 127.0.0.1:5432:
# the token signs host and port, so it only matches a connection to exactly that address.
CASES = [
    {
        "name": "static_keys_us_east_1",
        "host": "mydb.c9akciq32.us-east-1.rds.amazonaws.com",
        "port": 5432,
        "region": "us-east-1",
        "user": "iam_user",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session_token": None,
        "now": "2026-11-20T09:15:30Z",
    },
    {
        "name": "session_token_aurora_reader_plus_in_user",
        "host": "prod-aurora.cluster-ro-abcdefghijkl.eu-west-1.rds.amazonaws.com",
        "port": 6543,
        "region": "eu-west-1",
        "user": "iam_user+ci",
        "access_key_id": "ASIAQEXAMPLEEXAMPLE1",
        "secret_access_key": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "session_token": SESSION_TOKEN,
        "now": "2026-11-20T09:15:30Z",
    },
    {
        "name": "session_token_ap_southeast_2_dotted_user",
        "host": "orders.proxy-xyz123abc.ap-southeast-2.rds.amazonaws.com",
        "port": 5432,
        "region": "ap-southeast-2",
        "user": "app.deployer@example",
        "access_key_id": "ASIAQEXAMPLEEXAMPLE2",
        "secret_access_key": "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/ab",
        "session_token": SESSION_TOKEN,
        "now": "2027-02-28T23:59:59Z",
    },
    {
        "name": "china_partition_default_https_port",
        "host": "billing.cluster-abcdefghijkl.rds.cn-north-1.amazonaws.com.cn",
        "port": 443,
        "region": "cn-north-1",
        "user": "iam user with space",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session_token": None,
        "now": "2026-01-01T00:00:00Z",
    },
    {
        "name": "live_loopback_session_token",
        "host": "127.0.0.1",
        "port": 5432,
        "region": "us-east-1",
        "user": "pgmi_aws_iam_live",
        "access_key_id": "ASIAQEXAMPLELIVE0001",
        "secret_access_key": "LiveTestSecretKey/0123456789+abcdefEXAMPLE",
        "session_token": SESSION_TOKEN,
        "now": "2026-11-20T09:15:30Z",
    },
    {
        "name": "live_loopback_static_keys",
        "host": "127.0.0.1",
        "port": 5432,
        "region": "eu-central-1",
        "user": "pgmi_aws_iam_live",
        "access_key_id": "AKIAQEXAMPLELIVE0002",
        "secret_access_key": "AnotherLiveTestKey/9876543210+zyxwEXAMPLE",
        "session_token": None,
        "now": "2026-11-20T09:15:30Z",
    },
]


def token_for(case):
    """botocore's token for one case, with botocore's clock frozen at case['now']."""
    frozen = datetime.datetime.strptime(case["now"], "%Y-%m-%dT%H:%M:%SZ")
    original = botocore.auth.get_current_datetime
    # add_auth reads the time through this name; a naive UTC datetime, as botocore's own.
    botocore.auth.get_current_datetime = lambda *args, **kwargs: frozen
    try:
        session = botocore.session.Session()
        client = session.create_client(
            "rds",
            region_name=case["region"],
            aws_access_key_id=case["access_key_id"],
            aws_secret_access_key=case["secret_access_key"],
            aws_session_token=case["session_token"],
        )
        return client.generate_db_auth_token(
            DBHostname=case["host"],
            Port=case["port"],
            DBUsername=case["user"],
            Region=case["region"],
        )
    finally:
        botocore.auth.get_current_datetime = original


def fixture():
    cases = []
    for case in CASES:
        recorded = dict(case)
        recorded["token"] = token_for(case)
        cases.append(recorded)
    return {
        "generated_by": "scripts/aws-reference-tokens.py",
        "botocore_version": botocore.__version__,
        "expires_in_seconds": 900,
        "cases": cases,
    }


def main():
    text = json.dumps(fixture(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        old = FIXTURE.read_text() if FIXTURE.exists() else ""
        # The botocore version may differ; the tokens may not.
        strip = lambda t: [l for l in t.splitlines() if "botocore_version" not in l]
        if strip(old) != strip(text):
            print(f"{FIXTURE} differs from what botocore produces now", file=sys.stderr)
            return 1
        print("fixture matches botocore", botocore.__version__)
        return 0
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(text)
    print(f"wrote {len(CASES)} cases to {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
