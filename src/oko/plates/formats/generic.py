"""Formats of other countries, and the generic format that accepts any plausible plate.

Each country is a list of :class:`PlateFormat`; adding one is a few lines here or in a
file of its own registered with :func:`oko.plates.formats.register`. The generic format
(``*``) takes 3 to 10 symbols of any kind: it validates nothing and corrects nothing, so
its prior is low and any country format that fits wins over it.
"""

from __future__ import annotations

from oko.plates.formats.base import PlateFormat

GENERIC = PlateFormat(
    name="generic", country="*", patterns=tuple("X" * n for n in range(3, 11)), prior=0.3,
    description="3-10 letters or digits, no rules (plates of unlisted countries, vanity plates)")

# Ukraine and Belarus write plates with the 12 letters shared by the Cyrillic and Latin
# alphabets; Ukraine's are Cyrillic (I is the Ukrainian І), so its text is given in Cyrillic.
SHARED_LETTERS = "ABEIKMHOPCTX"
UA_CYRILLIC = dict(zip(SHARED_LETTERS, "АВЕІКМНОРСТХ", strict=True))

# Plates whose current national formats are fixed templates.
OTHER_COUNTRIES: dict[str, list[PlateFormat]] = {
    "UA": [PlateFormat("ua_standard", "UA", ("LL DDDD LL",), letters=SHARED_LETTERS,
                       native=UA_CYRILLIC, description="Ukraine since 2004")],
    "BY": [PlateFormat("by_standard", "BY", ("DDDD LL D",), letters=SHARED_LETTERS,
                       description="Belarus cars")],
    "KZ": [PlateFormat("kz_standard", "KZ", ("DDD LLL DD",), description="Kazakhstan since 2012")],
    "CZ": [PlateFormat("cz_standard", "CZ", ("D L X DDDD",), description="Czechia since 2001")],
}
