"""The signature schemes against the providers' own published test values (GitHub's and Slack's
documentation), and every way a delivery is refused: a wrong secret, a changed body, a missing
or malformed header, a signed time too old or too far ahead. (Stripe's scheme is checked against
localstripe's own signing in test_webhooks.py.)"""

from __future__ import annotations

import pytest

from connector_service.webhooks.schemes import Refused, sign, verify

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
GITHUB_SECRET, GITHUB_BODY = "It's a Secret to Everybody", b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
# https://api.slack.com/authentication/verifying-requests-from-slack
SLACK_SECRET, SLACK_TIME = "8f742231b10e8888abcd99yyyzzz85a5", 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
    b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
    b"00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d1"
    b"0d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def _refused(scheme, secret, headers, body, now, **kw) -> Refused:
    with pytest.raises(Refused) as info:
        verify(scheme, secret, {k.lower(): v for k, v in headers.items()}, body, now=now, **kw)
    return info.value


def test_githubs_published_example():
    headers = {"x-hub-signature-256": GITHUB_SIGNATURE}
    verify("github", GITHUB_SECRET, headers, GITHUB_BODY, now=0)
    assert sign("github", GITHUB_SECRET, GITHUB_BODY, now=0) == {
        "X-Hub-Signature-256": GITHUB_SIGNATURE}  # fmt: skip
    assert _refused("github", "another secret", headers, GITHUB_BODY, 0).reason == "bad_signature"
    assert _refused("github", GITHUB_SECRET, headers, b"Hello, World?", 0).status == 401
    assert _refused("github", GITHUB_SECRET, {}, GITHUB_BODY, 0).reason == "bad_signature"


def test_slacks_published_example():
    headers = {"x-slack-request-timestamp": str(SLACK_TIME), "x-slack-signature": SLACK_SIGNATURE}
    verify("slack", SLACK_SECRET, headers, SLACK_BODY, now=SLACK_TIME + 10)
    assert _refused("slack", SLACK_SECRET, headers, SLACK_BODY + b"&x=1", SLACK_TIME).reason == (
        "bad_signature"
    )
    late = _refused("slack", SLACK_SECRET, headers, SLACK_BODY, SLACK_TIME + 301)
    assert (late.reason, late.status) == ("stale", 401)
    early = _refused("slack", SLACK_SECRET, headers, SLACK_BODY, SLACK_TIME - 301)
    assert early.reason == "stale"  # a clock far ahead is refused too
    # a time that is not the one signed: the signature no longer matches
    moved = {**headers, "x-slack-request-timestamp": str(SLACK_TIME + 1)}
    assert _refused("slack", SLACK_SECRET, moved, SLACK_BODY, SLACK_TIME).reason == "bad_signature"


@pytest.mark.parametrize("scheme", ["github", "stripe", "shopify", "slack"])
def test_what_a_scheme_signs_it_takes_and_nothing_else(scheme):
    body, now = b'{"id": "evt_1", "type": "customer.created"}', 1_800_000_000
    headers = {k.lower(): v for k, v in sign(scheme, "s" * 32, body, now=now).items()}
    verify(scheme, "s" * 32, headers, body, now=now + 5)
    assert _refused(scheme, "t" * 32, headers, body, now).reason == "bad_signature"
    assert _refused(scheme, "s" * 32, headers, body[:-1], now).reason == "bad_signature"


def test_stripes_header_in_all_its_forms():
    body, now = b'{"id": "evt_1"}', 1_800_000_000
    signed = sign("stripe", "whsec_" + "x" * 24, body, now=now)["Stripe-Signature"]
    t, v1 = signed.split(",")
    secret = "whsec_" + "x" * 24
    # several v1 while a secret is rolled: one matching is enough
    verify("stripe", secret, {"stripe-signature": f"{t},v1={'0' * 64},{v1}"}, body, now=now)
    for header in ("", t, v1, "t=abc," + v1, "garbage"):
        assert _refused("stripe", secret, {"stripe-signature": header}, body, now).status == 401
    stale = _refused("stripe", secret, {"stripe-signature": signed}, body, now + 301)
    assert stale.reason == "stale"
    verify("stripe", secret, {"stripe-signature": signed}, body, now=now + 3000,
           tolerance=3600)  # fmt: skip
