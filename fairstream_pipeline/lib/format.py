"""Money and percentages as a reader reads them, computed in integers (never through a float
until the percentage a chart plots)."""

from __future__ import annotations


def cents(amount: int) -> str:
    """Integer cents as ``1,234.56`` (EUR)."""
    sign = "-" if amount < 0 else ""
    whole, rest = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{rest:02d}"


def eur(amount: int) -> str:
    """Integer cents as money a reviewer reads: ``1,234.56 EUR`` (``-15.00 EUR``)."""
    return f"{cents(amount)} EUR"


def _signed_basis_points(part: int, whole: int) -> tuple[bool, int]:
    """``part / whole`` in basis points, truncated in integers: (negative, basis points of the
    absolute value). ``whole`` is not zero."""
    return (part < 0) != (whole < 0) and part != 0, abs(part) * 10_000 // abs(whole)


def percent(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, computed in integers (truncated)."""
    if whole == 0:
        return "n/a"
    negative, basis_points = _signed_basis_points(part, whole)
    return f"{'-' if negative else ''}{basis_points // 100}.{basis_points % 100:02d}%"


def percent_number(part: int, whole: int) -> float | None:
    """``part / whole`` in percent with two decimals (truncated in integers, as :func:`percent`),
    as a number so the UI can plot it across months; ``None`` when ``whole`` is zero."""
    if whole == 0:
        return None
    negative, basis_points = _signed_basis_points(part, whole)
    return (-1 if negative else 1) * basis_points / 100
