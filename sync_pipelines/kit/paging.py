"""Paging through a vendor's pages, with a guard against a vendor serving one page again.

A page with the same keys as the one before stops the run (:class:`RepeatedPageError`), or
ends paging where the vendor is known to repeat its last page (:meth:`PageRepeatGuard.repeats`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TypeVar

from sync_pipelines.http_client import VendorResponseError

P = TypeVar("P")


class RepeatedPageError(VendorResponseError):
    """The vendor answered a page with exactly the records of the page before it."""


class PageRepeatGuard:
    """Remembers the keys of the last page and tells whether the next one repeats them."""

    def __init__(self, vendor: str, endpoint: str):
        self.vendor = vendor
        self.endpoint = endpoint
        self._previous: list[Hashable] | None = None

    def repeats(self, keys: Sequence[Hashable], *, first: bool = False) -> bool:
        """Whether this non-empty page has the keys of the previous one (``first``: a new
        paging starts here, nothing to repeat)."""
        keys = list(keys)
        same = bool(keys) and not first and keys == self._previous
        self._previous = keys
        return same

    def check(self, keys: Sequence[Hashable], *, first: bool = False, page: object = "") -> None:
        """Raise :class:`RepeatedPageError` when this page repeats the previous one."""
        if self.repeats(keys, first=first):
            raise RepeatedPageError(
                self.vendor, self.endpoint,
                f"page {page} repeats the previous page ({len(keys)} same record(s)): the vendor ignores "
                "the paging parameters; stopping instead of reading the same page again",
            )


def paginate(
    fetch: Callable[[int], P],
    *,
    keys: Callable[[P], Sequence[Hashable]],
    is_last: Callable[[P], bool],
    max_pages: int,
    vendor: str,
    endpoint: str,
    first_page: int = 1,
) -> Iterator[P]:
    """``fetch(n)`` for n = ``first_page``, ... until a page ``is_last`` or ``max_pages``
    pages were read; a page repeating the previous one raises :class:`RepeatedPageError`."""
    guard = PageRepeatGuard(vendor, endpoint)
    for number in range(first_page, first_page + max_pages):
        page = fetch(number)
        guard.check(keys(page), first=number == first_page, page=number)
        yield page
        if is_last(page):
            return
