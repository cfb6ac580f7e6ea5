"""Signed tokens for links in emails: unsubscribe, confirm a subscription, preferences.

itsdangerous signs the subscriber id with HMAC-SHA256 and the secret from DIGEST_SECRET;
the secret never goes into the store, and a token cannot be forged or altered.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

_UNSUBSCRIBE = "paper-digest unsubscribe"


def _id_token(secret: str, purpose: str, subscriber_id: int) -> str:
    return URLSafeSerializer(secret, salt=purpose).dumps(subscriber_id)


def _read_id_token(secret: str, purpose: str, token: str) -> int | None:
    if not token.isascii():  # never a token of ours (and itsdangerous chokes on surrogates)
        return None
    try:
        value = URLSafeSerializer(secret, salt=purpose).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """A token naming one subscriber, for their unsubscribe link."""
    return _id_token(secret, _UNSUBSCRIBE, subscriber_id)


def read_unsubscribe_token(secret: str, token: str) -> int | None:
    """The subscriber id in a valid token, or None for a forged or altered one."""
    return _read_id_token(secret, _UNSUBSCRIBE, token)


_CONFIRM = "paper-digest confirm"
_PREFERENCES = "paper-digest preferences"
CONFIRM_MAX_AGE = 48 * 3600  # a confirmation link works for 48 hours


def confirm_token(secret: str, email: str, topics: str, state: str) -> str:
    """A signed, timed request to subscribe: nothing is stored until it comes back.

    `state` is the address's subscription state when the link was made
    (`subscribers.consent_state`): the link is good only while that state lasts.
    """
    return URLSafeTimedSerializer(secret, salt=_CONFIRM).dumps([email, topics, state])


def read_confirm_token(secret: str, token: str, max_age: int = CONFIRM_MAX_AGE,
                       now: float | None = None) -> tuple[str, str, str] | None:
    """(email, topics, state) from a valid, unexpired confirmation token; None otherwise."""
    serializer = URLSafeTimedSerializer(secret, salt=_CONFIRM)
    if not token.isascii():
        return None
    try:
        if now is None:
            value = serializer.loads(token, max_age=max_age)
        else:
            value, stamp = serializer.loads(token, return_timestamp=True)
            if now - stamp.timestamp() > max_age:
                return None
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, str) for v in value)):
        return value[0], value[1], value[2]
    return None


def preferences_token(secret: str, subscriber_id: int) -> str:
    """A token for a subscriber's topic preferences page."""
    return _id_token(secret, _PREFERENCES, subscriber_id)


def read_preferences_token(secret: str, token: str) -> int | None:
    """The subscriber id in a valid preferences token, or None."""
    return _read_id_token(secret, _PREFERENCES, token)
