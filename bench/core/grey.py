"""The grey convention: how a colour image is turned into the grey input every method is given (no torch here, so
the CLI can name the choices without importing it).

* ``bt601``: ITU-R BT.601 luma ``0.299 R' + 0.587 G' + 0.114 B'`` of the gamma-encoded sRGB values, as PIL's
  ``convert("L")`` and the handcrafted translation H_t of the SpyncoGan paper compute it (colorbench's default).
* ``cie-l``: CIE L* of the image divided by 100.

:class:`Grey` is a ``StrEnum``: a member equals, hashes, prints and serialises (JSON) as its value, so records
and cell keys are the same whether a string or a member was passed. :func:`Grey.parse` is the one validation.
"""

from __future__ import annotations

from enum import StrEnum


class Grey(StrEnum):
    """A grey convention (see the module docstring)."""

    BT601 = "bt601"
    CIE_L = "cie-l"

    @classmethod
    def parse(cls, value: "str | Grey") -> "Grey":
        """The member for ``value``; ValueError naming the choices for anything else."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown grey convention {value!r}; choose one of {GREY_CONVENTIONS}") from None


#: Grey conventions accepted by :func:`colorbench.core.color.rgb_to_grey` and recorded in every run record.
GREY_CONVENTIONS: tuple[str, ...] = tuple(g.value for g in Grey)
