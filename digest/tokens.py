"""Signed tokens for links in emails (unsubscribe now; confirmation and preferences later).

itsdangerous signs the subscriber id with HMAC-SHA256 and the secret from DIGEST_SECRET;
the secret never goes into the store, and a token cannot be forged or altered.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

_UNSUBSCRIBE = "paper-digest unsubscribe"


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """A token naming one subscriber, for their unsubscribe link."""
    return URLSafeSerializer(secret, salt=_UNSUBSCRIBE).dumps(subscriber_id)


def read_unsubscribe_token(secret: str, token: str) -> int | None:
    """The subscriber id in a valid token, or None for a forged or altered one."""
    try:
        value = URLSafeSerializer(secret, salt=_UNSUBSCRIBE).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
