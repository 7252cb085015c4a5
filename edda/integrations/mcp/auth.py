"""Bearer tokens for the MCP server: who may call it.

A ``token_verifier`` is either a function of the token (sync or async) that
answers whether it is accepted, as in Edda, or an object with the MCP SDK's
``TokenVerifier`` shape (``async verify_token(token) -> AccessToken | None``).
Unlike Edda, a request without a token is refused as well: a verifier that
only sees the tokens it is shown guards nothing.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from edda.runtime.http import HttpRequest

#: ``verify(token) -> bool`` (or an awaitable of it), or an object with an async
#: ``verify_token(token)`` that returns None for a token it refuses.
TokenVerifierLike: TypeAlias = "Callable[[str], bool | Awaitable[bool]] | Any"


def bearer_of(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (lower-cased keys), if any."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class BearerCheck:
    """Checks the bearer token of a request with the user's verifier."""

    def __init__(self, verifier: TokenVerifierLike) -> None:
        verify_token = getattr(verifier, "verify_token", None)
        if callable(verify_token):
            self._verify: Callable[[str], Any] = verify_token
            self._answers_with_none = True
        elif callable(verifier):
            self._verify = verifier
            self._answers_with_none = False
        else:
            raise TypeError("token_verifier must be a function of the token that returns "
                            "whether it is accepted, or an object with an async verify_token(token), "
                            f"got {verifier!r}")

    async def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why the request may not pass, or None if its token is accepted.

        Raises:
            Exception: Whatever the verifier raised.
        """
        token = bearer_of(headers)
        if token is None:
            return "a bearer token is required (Authorization: Bearer <token>)"
        verdict = self._verify(token)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        accepted = verdict is not None if self._answers_with_none else bool(verdict)
        return None if accepted else "the bearer token was not accepted"

    async def allows(self, request: HttpRequest) -> bool:
        """The check as an `EddaApp` ``authorize`` hook."""
        return await self.refusal(request.headers) is None
