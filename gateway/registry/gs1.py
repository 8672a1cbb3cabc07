"""GS1 keys for what a tag is bound to: parsed, verified and written in one canonical form.

Assets are named the way the platform and EPCIS name them: a GS1 Digital Link URI on
``id.gs1.org`` (GS1 Digital Link Standard: URI Syntax). Accepted keys:

==========  ====  =========================================================================
kind        AI    value
==========  ====  =========================================================================
SSCC        00    18 digits, check digit (a logistic unit: a parcel, a pallet)
GTIN        01    8, 12, 13 or 14 digits, check digit, written as GTIN-14 (a product)
SGTIN       01    a GTIN plus its serial, AI 21: 1-20 characters of set 82 (one item)
GIAI        8004  GS1 Company Prefix (4-12 digits) + asset reference, at most 30 characters
                  of set 82, no check digit (a fixed or returnable asset)
GRAI        8003  ``0`` + GRAI-13 (check digit) + an optional serial of 0-16 characters of
                  set 82 (a returnable asset: a roll cage, a crate)
GLN         414   13 digits, check digit, optional extension AI 254 (a party or a location)
==========  ====  =========================================================================

Input is a Digital Link URI on any domain, with any path prefix, ``http`` or ``https``, in
any letter case of scheme and host, with percent-encoding (``https://example.com/dl/00/...``),
or an EPC pure-identity URN (``urn:epc:id:sscc:0614141.1234567890``, also ``sgtin``, ``giai``,
``grai``, ``sgln``; GS1 EPC Tag Data Standard). The canonical form keeps only what identifies
the thing: the key and its identifying qualifier (the serial of an SGTIN, the extension of a
GLN); key qualifiers such as batch (10) and data attributes (the query string) are dropped.
Check digits are verified (GS1 General Specifications, section 7.9.1: digits weighted 3 and 1
from the right, the check digit brings the sum to a multiple of 10); a wrong one is refused
with the digit that was expected.

The Digital Link grammar (path prefixes, qualifier order, percent-decoding, the syntax of
every AI value, query attributes) is the ``biip`` library's; the key rules above, the EPC URNs
and the canonical form are ours.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from biip import ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from gateway.registry.errors import Gs1Error, Gs1ErrorReason

__all__ = [
    "ASSET_KINDS",
    "CANONICAL_DOMAIN",
    "GS1_KEY_MAX_CHARS",
    "Gs1Key",
    "Gs1KeyKind",
    "canonical_asset_uri",
    "check_digit",
    "parse_gs1_key",
]

#: GS1's own resolver: the one domain of every canonical Digital Link URI.
CANONICAL_DOMAIN: Final = "id.gs1.org"
#: Far above the longest valid input (a URI with a long path prefix and attributes); refusing
#: longer text early keeps a hostile command from costing more than a regular expression.
GS1_KEY_MAX_CHARS: Final = 1024

#: GS1 Company Prefixes are 4 to 12 digits (General Specifications); EPC URNs allow 6 to 12.
_COMPANY_PREFIX_MIN_DIGITS: Final = 4
_EPC_COMPANY_PREFIX_DIGITS: Final = range(6, 13)
_SERIAL_MAX_CHARS: Final = 20
_GIAI_MAX_CHARS: Final = 30
_GRAI_SERIAL_MAX_CHARS: Final = 16
_GLN_EXTENSION_MAX_CHARS: Final = 20
_GTIN_LENGTHS: Final = (8, 12, 13, 14)

#: GS1 AI encodable character set 82 (General Specifications).
_CSET82: Final = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*")
_DIGITS: Final = re.compile(r"[0-9]*")

#: Every primary key of the Digital Link standard, to tell "a key we do not bind to" from
#: "not a Digital Link URI" in the error.
_DL_PRIMARY_AIS: Final = frozenset(
    {"00", "01", "253", "255", "401", "402", "414", "417", "8003", "8004"}
    | {"8006", "8010", "8013", "8017", "8018"}
)


class Gs1KeyKind(enum.StrEnum):
    SSCC = "sscc"
    GTIN = "gtin"
    SGTIN = "sgtin"
    GIAI = "giai"
    GRAI = "grai"
    GLN = "gln"


_AI: Final = {
    Gs1KeyKind.SSCC: "00",
    Gs1KeyKind.GTIN: "01",
    Gs1KeyKind.SGTIN: "01",
    Gs1KeyKind.GIAI: "8004",
    Gs1KeyKind.GRAI: "8003",
    Gs1KeyKind.GLN: "414",
}

#: Kinds that can name an asset a tag is fixed to (one physical thing). A GTIN names a
#: product, a GRAI without serial an asset type, a GLN a party or place: not one thing.
ASSET_KINDS: Final = frozenset(
    {Gs1KeyKind.SSCC, Gs1KeyKind.SGTIN, Gs1KeyKind.GIAI, Gs1KeyKind.GRAI}
)


@dataclass(frozen=True, slots=True)
class Gs1Key:
    """A verified GS1 key.

    ``value`` is the AI's value as in an element string: SSCC-18, GTIN-14, the GIAI, the GRAI
    (``0`` + GRAI-13 + serial) or GLN-13. ``qualifier`` is the serial (AI 21) of an SGTIN or
    the extension (AI 254) of a GLN.
    """

    kind: Gs1KeyKind
    value: str
    qualifier: str | None = None

    @property
    def ai(self) -> str:
        return _AI[self.kind]

    @property
    def grai_serial(self) -> str | None:
        """The serial part of a GRAI (None for other kinds, or a GRAI without one)."""
        if self.kind is not Gs1KeyKind.GRAI:
            return None
        return self.value[14:] or None

    @property
    def is_individual(self) -> bool:
        """Whether the key names one physical thing (and so can be an asset)."""
        if self.kind is Gs1KeyKind.GRAI:
            return self.grai_serial is not None
        return self.kind in ASSET_KINDS

    @property
    def uri(self) -> str:
        """The canonical GS1 Digital Link URI."""
        path = f"/{self.ai}/{_encode(self.value)}"
        if self.qualifier is not None:
            qualifier_ai = "21" if self.kind is Gs1KeyKind.SGTIN else "254"
            path += f"/{qualifier_ai}/{_encode(self.qualifier)}"
        return f"https://{CANONICAL_DOMAIN}{path}"


def _encode(value: str) -> str:
    # Everything but RFC 3986 unreserved characters is percent-encoded: set 82 holds URI
    # delimiters ("/", "?", "&", ...) that must not be read as structure, and one rule for all
    # gives every key exactly one spelling (the same as biip's canonical URIs).
    return quote(value, safe="")


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the key without its check digit)."""
    if not digits.isascii() or not digits.isdigit():
        raise Gs1Error(Gs1ErrorReason.BAD_CHARACTER, f"{digits!r} is not all digits")
    return gs1_standard_check_digit(digits)


# -- the rules of each key ---------------------------------------------------------------------


def _require_digits(name: str, value: str, lengths: tuple[int, ...]) -> None:
    if not _DIGITS.fullmatch(value):
        raise Gs1Error(Gs1ErrorReason.BAD_CHARACTER, f"{name} {value!r} must be digits only")
    if len(value) not in lengths:
        wanted = " or ".join(str(n) for n in lengths)
        raise Gs1Error(
            Gs1ErrorReason.BAD_LENGTH, f"{name} {value!r} has {len(value)} digits, needs {wanted}"
        )


def _verify_check_digit(name: str, value: str) -> None:
    expected = gs1_standard_check_digit(value[:-1])
    if int(value[-1]) != expected:
        raise Gs1Error(
            Gs1ErrorReason.BAD_CHECK_DIGIT,
            f"{name} {value}: check digit is {value[-1]}, expected {expected}",
            expected_check_digit=expected,
        )


def _require_cset82(name: str, value: str, min_chars: int, max_chars: int) -> None:
    if not _CSET82.fullmatch(value):
        bad = next(c for c in value if not _CSET82.fullmatch(c))
        raise Gs1Error(
            Gs1ErrorReason.BAD_CHARACTER,
            f"{name} {value!r}: {bad!r} is not in the GS1 character set 82",
        )
    if not min_chars <= len(value) <= max_chars:
        raise Gs1Error(
            Gs1ErrorReason.BAD_LENGTH,
            f"{name} {value!r} has {len(value)} characters, needs {min_chars} to {max_chars}",
        )


def _sscc(value: str) -> Gs1Key:
    _require_digits("SSCC", value, (18,))
    _verify_check_digit("SSCC", value)
    return Gs1Key(Gs1KeyKind.SSCC, value)


def _gtin(value: str, serial: str | None) -> Gs1Key:
    _require_digits("GTIN", value, _GTIN_LENGTHS)
    _verify_check_digit("GTIN", value)
    gtin14 = value.zfill(14)
    if serial is None:
        return Gs1Key(Gs1KeyKind.GTIN, gtin14)
    _require_cset82("serial (AI 21)", serial, 1, _SERIAL_MAX_CHARS)
    return Gs1Key(Gs1KeyKind.SGTIN, gtin14, serial)


def _giai(value: str) -> Gs1Key:
    _require_cset82("GIAI", value, 1, _GIAI_MAX_CHARS)
    leading = len(value) - len(value.lstrip("0123456789"))
    if leading < _COMPANY_PREFIX_MIN_DIGITS:
        raise Gs1Error(
            Gs1ErrorReason.BAD_SYNTAX,
            f"GIAI {value!r} must start with a GS1 Company Prefix "
            f"(at least {_COMPANY_PREFIX_MIN_DIGITS} digits)",
        )
    return Gs1Key(Gs1KeyKind.GIAI, value)


def _grai(value: str) -> Gs1Key:
    head, serial = value[:14], value[14:]
    if not head.startswith("0"):
        raise Gs1Error(
            Gs1ErrorReason.BAD_SYNTAX,
            f"GRAI {value!r} must start with 0 and the 13-digit GRAI (AI 8003 is N1+N13+X..16)",
        )
    _require_digits("GRAI-13", head[1:], (13,))
    _verify_check_digit("GRAI-13", head[1:])
    _require_cset82("GRAI serial", serial, 0, _GRAI_SERIAL_MAX_CHARS)
    return Gs1Key(Gs1KeyKind.GRAI, value)


def _gln(value: str, extension: str | None) -> Gs1Key:
    _require_digits("GLN", value, (13,))
    _verify_check_digit("GLN", value)
    if extension is not None:
        _require_cset82("GLN extension (AI 254)", extension, 1, _GLN_EXTENSION_MAX_CHARS)
    return Gs1Key(Gs1KeyKind.GLN, value, extension)


# -- parsing -----------------------------------------------------------------------------------


def parse_gs1_key(text: str) -> Gs1Key:
    """Parse a GS1 Digital Link URI or an EPC pure-identity URN into a verified key.

    Raises :class:`Gs1Error` with the reason (a bad check digit says which one was expected).
    """
    if not isinstance(text, str):
        raise Gs1Error(Gs1ErrorReason.BAD_SYNTAX, f"not a string: {type(text).__name__}")
    if len(text) > GS1_KEY_MAX_CHARS:
        raise Gs1Error(
            Gs1ErrorReason.BAD_SYNTAX, f"{len(text)} characters, at most {GS1_KEY_MAX_CHARS}"
        )
    lowered = text[:16].lower()
    if lowered.startswith("urn:epc:id:"):
        return _parse_epc_urn(text)
    if lowered.startswith(("https://", "http://")):
        return _parse_digital_link(text)
    raise Gs1Error(
        Gs1ErrorReason.BAD_SYNTAX,
        f"{text[:60]!r} is neither a GS1 Digital Link URI (https://id.gs1.org/00/<SSCC>) "
        "nor an EPC URN (urn:epc:id:sscc:...)",
    )


def canonical_asset_uri(text: str) -> str:
    """The canonical Digital Link URI of an asset key (SSCC, SGTIN, GIAI, serialised GRAI).

    Raises :class:`Gs1Error`; UNSUPPORTED_KEY for a valid key that names no single thing.
    """
    key = parse_gs1_key(text)
    if not key.is_individual:
        why = {
            Gs1KeyKind.GTIN: "a GTIN names a product, not one item: add its serial (/21/...)",
            Gs1KeyKind.GRAI: "a GRAI without a serial names an asset type, not one asset",
            Gs1KeyKind.GLN: "a GLN names a party or a location, not an asset",
        }.get(key.kind, f"a {key.kind.value.upper()} cannot name an asset")
        raise Gs1Error(Gs1ErrorReason.UNSUPPORTED_KEY, why)
    return key.uri


def _parse_digital_link(text: str) -> Gs1Key:
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise Gs1Error(Gs1ErrorReason.BAD_SYNTAX, f"not a URI: {exc}") from exc
    segments = parts.path.split("/")
    primary = next((i for i, s in enumerate(segments) if s in _DL_PRIMARY_AIS), None)
    if primary is None:
        raise Gs1Error(
            Gs1ErrorReason.BAD_SYNTAX,
            f"no GS1 primary key in the path {parts.path[:80]!r} (expected /00/<SSCC>, "
            "/01/<GTIN>/21/<serial>, /8004/<GIAI>, /8003/<GRAI>, /414/<GLN>)",
        )
    ai = segments[primary]
    if ai not in _AI.values():
        raise Gs1Error(Gs1ErrorReason.UNSUPPORTED_KEY, f"AI {ai} is not a key tags are bound to")
    # The key's own rules first: their messages are precise (the expected check digit).
    raw = unquote(segments[primary + 1]) if primary + 1 < len(segments) else ""
    if ai == "00":
        _sscc(raw)
    elif ai == "01":
        _gtin(raw, None)
    elif ai == "8004":
        _giai(raw)
    elif ai == "8003":
        _grai(raw)
    else:
        _gln(raw, None)
    try:
        link = GS1DigitalLinkURI.parse(text)
    except (ParseError, ValueError) as exc:
        raise Gs1Error(Gs1ErrorReason.BAD_SYNTAX, str(exc)[:200]) from exc
    elements = {element.ai.ai: element.value for element in link.element_strings}
    first = link.element_strings[0]
    if first.ai.ai != ai:  # a path prefix that looked like a key to one of us: be strict
        raise Gs1Error(Gs1ErrorReason.BAD_SYNTAX, f"ambiguous primary key in {parts.path!r}")
    if ai == "00":
        return _sscc(first.value)
    if ai == "01":
        return _gtin(first.value, elements.get("21"))
    if ai == "8004":
        return _giai(first.value)
    if ai == "8003":
        return _grai(first.value)
    return _gln(first.value, elements.get("254"))


_EPC_SCHEMES: Final = {"sscc": 2, "sgtin": 3, "giai": 2, "grai": 3, "sgln": 3}


def _parse_epc_urn(text: str) -> Gs1Key:
    body = text[len("urn:epc:id:") :]
    scheme, colon, rest = body.partition(":")
    scheme = scheme.lower()
    # The last field (a serial, an asset reference) may itself contain dots; the fields
    # before it are digits.
    fields = rest.split(".", _EPC_SCHEMES.get(scheme, 1) - 1) if colon else []
    if scheme not in _EPC_SCHEMES or len(fields) != _EPC_SCHEMES[scheme]:
        known = ", ".join(f"urn:epc:id:{s}:" for s in _EPC_SCHEMES)
        raise Gs1Error(
            Gs1ErrorReason.BAD_SYNTAX,
            f"{text[:60]!r}: expected one of {known} with its dot-separated fields",
        )
    prefix = fields[0]
    _require_digits("EPC company prefix", prefix, tuple(_EPC_COMPANY_PREFIX_DIGITS))
    if scheme == "sscc":
        serial_ref = fields[1]
        _require_digits("EPC serial reference", serial_ref, (17 - len(prefix),))
        body17 = serial_ref[0] + prefix + serial_ref[1:]
        return _sscc(body17 + str(gs1_standard_check_digit(body17)))
    if scheme == "sgtin":
        item_ref = fields[1]
        _require_digits("EPC item reference", item_ref, (13 - len(prefix),))
        body13 = item_ref[0] + prefix + item_ref[1:]
        return _gtin(body13 + str(gs1_standard_check_digit(body13)), _unescape(fields[2]))
    if scheme == "giai":
        return _giai(prefix + _unescape(fields[1]))
    if scheme == "grai":
        asset_type = fields[1]
        _require_digits("EPC asset type", asset_type, (12 - len(prefix),))
        body12 = prefix + asset_type
        grai13 = body12 + str(gs1_standard_check_digit(body12))
        return _grai("0" + grai13 + _unescape(fields[2]))
    location_ref, extension = fields[1], _unescape(fields[2])
    _require_digits("EPC location reference", location_ref, (12 - len(prefix),))
    body12 = prefix + location_ref
    # SGLN extension "0" means "no extension" (EPC Tag Data Standard).
    return _gln(
        body12 + str(gs1_standard_check_digit(body12)), None if extension == "0" else extension
    )


def _unescape(component: str) -> str:
    """An EPC URN component with its %-escapes decoded (TDS escapes ``"%&/<>?``)."""
    # An undecodable escape becomes U+FFFD, which the character set check then refuses.
    return unquote(component) if "%" in component else component
