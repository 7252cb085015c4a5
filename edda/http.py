"""The HTTP edge's helpers: `bearer_token` and the `HttpRequest` an authorizer sees."""

from edda.runtime.http import Authorizer, HttpRequest, bearer_token

__all__ = ["Authorizer", "HttpRequest", "bearer_token"]
