"""The busiest namespaces: which ones fill the global table, for ``top`` on the host."""

from __future__ import annotations

from collections.abc import Callable

from ctguard.errors import HostAccessError
from ctguard.usecases.top.frames import NamespaceShare
from ctguard.usecases.top.sampler import NamespaceReader

EACH_SECONDS = 2.0  # to read one namespace's count (a fork and a setns)
TOTAL_SECONDS = 10.0  # for the whole scan


def busiest_namespaces(maximum: Callable[[], int | None], top: int) -> NamespaceReader:
    """A reader of the ``top`` namespaces with the most entries (a fork per namespace)."""

    def scan() -> list[NamespaceShare]:
        from ctguard.host.namespaces import list_namespaces, namespace_usage
        from ctguard.sources.sysctl_runtime import read_count

        limit = maximum() or 0
        try:
            usages = namespace_usage(
                list_namespaces(), limit, read_count, each=EACH_SECONDS, total=TOTAL_SECONDS
            )
        except OSError as exc:
            raise HostAccessError(f"listing namespaces: {exc.strerror or exc}") from exc
        shares = []
        for u in usages[:top]:
            ns = u.namespace
            shares.append(NamespaceShare(ns.holder, ns.inode, u.count, u.share(), u.error))
        return shares

    return scan
