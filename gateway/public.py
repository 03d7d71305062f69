"""The paths the gateway serves without a credential, each with the most body it may send."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

# OAuth's browser legs carry no body; a provider's webhook delivery carries one, bounded here
# and again by connector_service (connector_service/webhooks/service.py, MAX_BODY)
WEBHOOK_PREFIX = "/api/v1/integrations/webhooks/"
WEBHOOK_MAX_BODY = 1024 * 1024


class PublicPaths(Mapping[str, int]):
    """Exact paths (GET and HEAD only) and prefixes followed by one path segment (POST only: a
    provider's webhook delivery to ``<prefix><token>``), mapped to the body each may send."""

    def __init__(self, exact: Mapping[str, int], prefixes: Mapping[str, int]) -> None:
        self.exact = MappingProxyType(dict(exact))
        self.prefixes = MappingProxyType(dict(prefixes))

    def __getitem__(self, path: str) -> int:
        if path in self.exact:
            return self.exact[path]
        for prefix, limit in self.prefixes.items():
            rest = path[len(prefix) :]
            if path.startswith(prefix) and rest and "/" not in rest:
                return limit
        raise KeyError(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self.exact)  # the exact paths (a prefix names many)

    def __len__(self) -> int:
        return len(self.exact)

    def allows(self, path: str, method: str) -> bool:
        """Whether ``method`` on ``path`` is served without a credential."""
        if path in self.exact:
            return method in ("GET", "HEAD")
        return method == "POST" and path in self


NO_PUBLIC_PATHS = PublicPaths({}, {})
