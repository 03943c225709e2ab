"""Small immutable values: email addresses, postal addresses, EINs, external
references and typed ids.

Each value validates and normalises its input when it is built, so an instance
that exists is always valid. Bad input raises
:class:`~altpay_core.errors.ValidationError` with a stable code per invalid
field; values made of several fields (:class:`Address`, :class:`ExternalRef`)
report every invalid field at once.

>>> str(EmailAddress("Ann@Example.COM"))
'Ann@example.com'
>>> str(EIN("123456789"))
'12-3456789'
>>> Address("1 Main St", "Albany", "ny", "12207", "us").region
'NY'
>>> str(ExternalRef("ConnectWise", "4711"))
'connectwise:4711'
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import typing
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import ClassVar, Final, Self

import attrs
import email_validator
import email_validator.exceptions
import email_validator.types
from stdnum.us import ein as stdnum_ein

from altpay_core._arguments import (
    checked_arguments,
    checked_constructor,
    checked_form_constructor,
)
from altpay_core._fields import (
    NOT_TEXT,
    id_text,
    plain_str,
    system_name,
    text_keyed,
    valid_unicode,
)
from altpay_core.errors import (
    ArgumentError,
    FieldError,
    FieldErrors,
    ValidationError,
    key_text,
    shown,
)

__all__ = [
    "ADDRESS_LINE_MAX",
    "AccessRequestId",
    "Address",
    "CA_POSTAL_FIRST_LETTERS",
    "CA_REGIONS",
    "CustomerId",
    "EIN",
    "EmailAddress",
    "EntityId",
    "ExternalRef",
    "InvoiceId",
    "PartnerId",
    "PaymentId",
    "PaymentMethodId",
    "TagId",
    "TeamMemberId",
    "US_REGIONS",
    "UserId",
]

# Bad input is echoed back in a message through errors.shown: quoted, and cut
# short when long (never a wall of text; input may come from anywhere).


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


# --------------------------------------------------------------------------
# Email addresses


def _load_own_email_validator() -> ModuleType:
    """A private instance of email-validator, loaded from the same files.

    Besides its options, email-validator reads a module-level list,
    ``SPECIAL_USE_DOMAIN_NAMES``, that no argument overrides and that host
    applications edit (its README shows ``.remove("test")``). Through the
    package everyone imports, whether an address is valid would depend on
    what the host process did to that list, and the caches below would keep
    whichever answer came first. The private instance keeps the list as
    email-validator publishes it, frozen into a tuple; it shares the
    package's exception and result types, so its errors are
    ``email_validator.EmailNotValidError`` as usual. Where the package's
    files cannot be loaded again, the package itself is used.
    """
    name = f"{__package__}._email_validator"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    shared = {
        f"{name}.exceptions": email_validator.exceptions,
        f"{name}.types": email_validator.types,
    }
    try:
        public = importlib.util.find_spec("email_validator")
        if public is None or public.origin is None:
            raise ImportError("email-validator has no source file to load")
        spec = importlib.util.spec_from_file_location(
            name, public.origin, submodule_search_locations=public.submodule_search_locations
        )
        if spec is None or spec.loader is None:
            raise ImportError("email-validator cannot be loaded again")
        # Shared, not copied: the types callers catch and read.
        sys.modules.update(shared)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        vars(module)["SPECIAL_USE_DOMAIN_NAMES"] = tuple(module.SPECIAL_USE_DOMAIN_NAMES)
    except Exception:
        # Installed where its files cannot be read again (a zip archive, a
        # frozen application): the package everyone imports, list and all.
        for loaded_name in [n for n in sys.modules if n == name or n.startswith(f"{name}.")]:
            del sys.modules[loaded_name]
        return email_validator
    return module


_OWN_EMAIL_VALIDATOR: Final = _load_own_email_validator()
_validate_email_text: Final[Callable[..., email_validator.ValidatedEmail]] = (
    _OWN_EMAIL_VALIDATOR.validate_email
)
# The error it raises for an address it refuses: the package's own class,
# which the private instance shares; its own too, should a later version of
# email-validator define that class in a module the instance does not share.
_EMAIL_REFUSED: Final[tuple[type[Exception], ...]] = (
    email_validator.EmailNotValidError,
    _OWN_EMAIL_VALIDATOR.EmailNotValidError,
)


def _validate_email(text: str) -> email_validator.ValidatedEmail:
    # Every option is pinned, and the private instance above keeps its own
    # list of special-use domains, so that a global setting changed
    # elsewhere cannot make the same text valid in one call and invalid in
    # another (the caches below would hide such a change anyway).
    return _validate_email_text(
        text,
        check_deliverability=False,
        allow_smtputf8=True,
        allow_empty_local=False,
        allow_quoted_local=False,
        allow_domain_literal=False,
        allow_display_name=False,
        strict=False,
        globally_deliverable=True,
        test_environment=False,
    )


# The local part of most addresses: RFC 5322 "dot-atom" text in ASCII, which
# email-validator accepts and keeps exactly as it is.
_PLAIN_LOCAL_PART: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
)
# Role mailboxes (RFC 2142), whose local part email-validator lower-cases.
_ROLE_MAILBOXES: Final = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
     "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"}
)  # fmt: skip
# RFC 5321's limit on a whole address, in UTF-8 bytes, as email-validator checks it.
_EMAIL_MAX_BYTES: Final = 254


@functools.lru_cache(maxsize=4096)
def _normalise_domain(domain: str) -> tuple[str, str] | None:
    """email-validator's normalised and ASCII forms of the part after the
    @-sign, or None when it refuses that part (or the address it is in)."""
    try:
        # An address whose local part cannot be at fault: only the domain is judged.
        checked = _validate_email("a@" + domain)
    except _EMAIL_REFUSED:
        return None
    return checked.domain, checked.ascii_domain


@functools.lru_cache(maxsize=65_536)
def _normalise_email(text: str) -> tuple[str, str]:
    """Validate one address; return its normalised form and its key.

    Cached because every sync brings the same addresses back, and
    email-validator's full check costs far more than a dict look-up. Only
    successes are cached (``lru_cache`` does not keep exceptions).

    New addresses mostly share their domain with others (a company's users),
    so the domain's verdict is cached too: an address whose local part is
    plain ASCII text, at a domain email-validator accepts, is normalised to
    exactly what email-validator gives (the local part as it is, the domain
    normalised) without a full run. Anything else gets the full run.
    """
    local, at, domain = text.rpartition("@")
    if (
        at
        and _PLAIN_LOCAL_PART.fullmatch(local) is not None
        and local.lower() not in _ROLE_MAILBOXES
    ):
        forms = _normalise_domain(domain)
        if forms is not None:
            unicode_domain, ascii_domain = forms
            normalised = f"{local}@{unicode_domain}"
            # The lengths email-validator checks: as given, normalised, in ASCII.
            if (
                len(text.encode()) <= _EMAIL_MAX_BYTES
                and len(normalised.encode()) <= _EMAIL_MAX_BYTES
                and len(local) + 1 + len(ascii_domain) <= _EMAIL_MAX_BYTES
            ):
                return normalised, f"{local.casefold()}@{unicode_domain}"
    try:
        checked = _validate_email(text)
    except _EMAIL_REFUSED as error:
        raise ValidationError.single(
            "",
            "invalid_email",
            f"'email' must be a valid email address: {error} (got {shown(text)})",
        ) from None
    normalised = checked.normalized
    local, _, domain = normalised.rpartition("@")
    # Only the local part is case-folded: email-validator has already
    # normalised the domain (lower case, IDNA), and case-folding it again
    # would merge distinct domains such as strasse.de and straße.de.
    return normalised, f"{_folded(local)}@{domain}"


def _folded(local: str) -> str:
    """A local part as its key compares it: Unicode's canonical caseless
    match (D145, ``NFD(casefold(NFD(x)))``), kept composed (NFC, which is
    equal exactly when the NFD forms are). Folding alone would give two
    keys for one letter typed two ways: U+0390, Greek iota with dialytika
    and tonos, folds to three code points, and a letter with ypogegrammeni
    folds its iota subscript into a letter that canonical order places
    elsewhere."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", local).casefold())


@checked_constructor
@attrs.frozen(init=False, repr=False)
class EmailAddress:
    """An email address, normalised by email-validator (no DNS look-up).

    ``str()`` gives the normalised form: the local part keeps its case (but
    for role mailboxes such as ``Support@`` or ``info@``, which email-validator
    lower-cases), the domain is lower-cased and IDNA-normalised (a punycode domain is shown in
    Unicode). Surrounding whitespace is trimmed. Internationalised addresses
    are accepted.

    Two addresses are equal (and hash alike) when their :attr:`key` is equal:
    the local part is compared case-insensitively (rule C4).

    >>> e = EmailAddress("Ann.Lee@Globex.EXAMPLE")
    >>> str(e)
    'Ann.Lee@globex.example'
    >>> e == EmailAddress("ann.lee@globex.example")
    True
    >>> e.key
    'ann.lee@globex.example'
    >>> EmailAddress("ann@globex")
    Traceback (most recent call last):
    ...
    altpay_core.errors.ValidationError: (value): 'email' must be a valid ...

    Invalid input raises :class:`ValidationError` with code ``invalid_email``
    (``wrong_type`` when it is not a string) and an empty path: the caller
    puts it under the field's name.
    """

    value: str = attrs.field(eq=False)
    """The normalised address, as ``str()`` gives it."""
    # Not an init argument: derived from ``value`` (so attrs.evolve and
    # cattrs rebuild an address from its text alone).
    key: str = attrs.field(init=False)
    """The address as compared for uniqueness: the local part as Unicode's
    canonical caseless match compares it (case-folded, whichever way its
    accented letters were typed)."""

    def __init__(self, value: str | EmailAddress) -> None:
        if isinstance(value, str):
            # Trimmed before the cache, so that padding cannot make one
            # address take many entries.
            normalised, key = _normalise_email(str.strip(value))
        elif isinstance(value, EmailAddress):
            normalised, key = value.value, value.key
        else:
            raise ValidationError.single(
                "",
                "wrong_type",
                f"'email' must be a string (got {_type_name(value)})",
            )
        # Set the slots directly: this runs on every address of every sync,
        # and skips attrs' generic init for two known-good strings.
        _set = object.__setattr__
        _set(self, "value", normalised)
        _set(self, "key", key)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"EmailAddress({self.value!r})"


# --------------------------------------------------------------------------
# Postal addresses

US_REGIONS: Final[tuple[str, ...]] = (
    # the 50 states
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA",
    "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
    "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
    "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    # the District of Columbia, the inhabited territories, military post
    "DC", "AS", "GU", "MP", "PR", "VI", "AA", "AE", "AP",
)  # fmt: skip
"""USPS codes of the US states, DC, the territories and military mail."""

CA_POSTAL_FIRST_LETTERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "NL": "A",
        "NS": "B",
        "PE": "C",
        "NB": "E",
        "QC": "GHJ",
        "ON": "KLMNP",
        "MB": "R",
        "SK": "S",
        "AB": "T",
        "BC": "V",
        "NT": "X",
        "NU": "X",
        "YT": "Y",
    }
)
"""For each Canadian province or territory, the first letters of its postal
codes (Canada Post's forward sortation areas)."""

CA_REGIONS: Final[tuple[str, ...]] = tuple(sorted(CA_POSTAL_FIRST_LETTERS))
"""Canada Post codes of the Canadian provinces and territories."""

_COUNTRY_OF_REGION: Final[Mapping[str, str]] = {
    **dict.fromkeys(US_REGIONS, "US"),
    **dict.fromkeys(CA_REGIONS, "CA"),
}
_COUNTRIES: Final = ("US", "CA")

# ASCII digits only ([0-9], not \d, which matches any script's digits).
_US_ZIP: Final = re.compile(r"([0-9]{5})(?:-?([0-9]{4}))?")
# D F I O Q U are never used (they read like other characters); W and Z are
# never first. Only spaces between the halves: no code here takes other
# whitespace inside (the field is trimmed of any around it).
_CA_POSTAL: Final = re.compile(
    r"([ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z]) *([0-9][ABCEGHJ-NPRSTV-Z][0-9])"
)

_US_ZIP_EXPECTED: Final = "a US ZIP code like 12345 or 12345-6789"
_CA_POSTAL_EXPECTED: Final = "a Canadian postal code like K1A 0B1"
_REGION_EXPECTED: Final = {
    "US": "a US state, DC or territory code like NY",
    "CA": "a Canadian province or territory code like ON",
    None: "a US state or Canadian province or territory code like NY or ON",
}
_COUNTRY_NAME: Final = {"US": "United States", "CA": "Canada"}

_ADDRESS_FIELDS: Final = ("line1", "line2", "city", "region", "postal_code", "country")
_ADDRESS_KEYS: Final = frozenset(_ADDRESS_FIELDS)
_ADDRESS_REQUIRED: Final = _ADDRESS_KEYS - {"line2"}


class _Absent:
    """Marks a field that the input did not have at all (``from_mapping``)."""

    __slots__ = ()


_ABSENT: Final = _Absent()


# As _fields.required_text words it: text with a NUL or a lone surrogate
# (what JSON's "\u0000" and "\ud800" escapes give) is text no database stores.
_NOT_TEXT: Final = NOT_TEXT


def _clean_text(
    found: FieldErrors, path: str, value: object, max_length: int | None = None
) -> str | None:
    """A required text field, trimmed (of at most ``max_length`` characters,
    when given); None (and an error noted) if unusable."""
    if isinstance(value, _Absent):
        return None
    if not isinstance(value, str):
        found.add(path, "wrong_type", f"'{path}' must be a string (got {_type_name(value)})")
        return None
    text = str.strip(value)  # a plain str, whatever the subclass's strip gives
    if not text:
        found.add(path, "blank", f"'{path}' must not be blank")
        return None
    if not valid_unicode(text):
        found.add(path, "invalid_text", _NOT_TEXT.format(path))
        return None
    if max_length is not None and len(text) > max_length:
        found.add(
            path,
            "too_long",
            f"'{path}' must be at most {max_length} characters (got {len(text)})",
        )
        return None
    return text


def _clean_code(found: FieldErrors, path: str, value: object) -> str | None:
    """A country or region code: trimmed, upper case."""
    text = _clean_text(found, path, value)
    # Upper-case ASCII only: str.upper() maps some other letters onto ASCII
    # ones (U+017F, the long s, becomes S).
    if text is not None and text.isascii():
        return text.upper()
    return text


def _us_zip(text: str) -> str | None:
    match = _US_ZIP.fullmatch(text)
    if match is None:
        return None
    five, four = match.groups()
    return f"{five}-{four}" if four else five


def _ca_postal(text: str) -> str | None:
    if not text.isascii():  # see _clean_code
        return None
    match = _CA_POSTAL.fullmatch(text.upper())
    if match is None:
        return None
    return "{} {}".format(*match.groups())


ADDRESS_LINE_MAX: Final = 200
"""The most characters in an address line (``line1``, ``line2``) or a
``city``, once trimmed: as many as a customer's company name."""


def _clean_address(
    *,
    line1: object,
    line2: object,
    city: object,
    region: object,
    postal_code: object,
    country: object,
    found: FieldErrors,
) -> tuple[str, str | None, str, str, str, str] | None:
    """Check every field of an address; note each error in ``found``.

    Returns the normalised fields, or None when any is invalid. A field whose
    validity depends on another (region on country, postal code on country and
    region) is judged against that other field only when it is valid itself;
    against an invalid country, region and postal code are judged against
    both countries and never reported as mismatches.
    """
    clean_line1 = _clean_text(found, "line1", line1, ADDRESS_LINE_MAX)
    clean_line2: str | None = None
    if line2 is not None and not isinstance(line2, _Absent):
        if isinstance(line2, str):
            clean_line2 = str.strip(line2) or None
            if clean_line2 is not None:  # optional: blank is None, else as line1
                clean_line2 = _clean_text(found, "line2", clean_line2, ADDRESS_LINE_MAX)
        else:
            found.add(
                "line2",
                "wrong_type",
                f"'line2' must be a string or None (got {_type_name(line2)})",
            )
    clean_city = _clean_text(found, "city", city, ADDRESS_LINE_MAX)

    clean_country = _clean_code(found, "country", country)
    if clean_country is not None and clean_country not in _COUNTRIES:
        found.add(
            "country",
            "unknown_country",
            f"'country' must be US or CA (got {shown(clean_country)})",
        )
        clean_country = None
    # An invalid country is reported once, above; the other fields are then
    # judged against both countries, never as mismatches.
    known_country = clean_country

    clean_region = _clean_code(found, "region", region)
    if clean_region is not None:
        home = _COUNTRY_OF_REGION.get(clean_region)
        if home is None:
            found.add(
                "region",
                "unknown_region",
                f"'region' must be {_REGION_EXPECTED[known_country]} (got {shown(clean_region)})",
            )
            clean_region = None
        elif known_country is not None and home != known_country:
            found.add(
                "region",
                "region_country_mismatch",
                f"'region' must be {_REGION_EXPECTED[known_country]}, to match "
                f"'country' {known_country} (got {shown(clean_region)}, "
                f"which is in {_COUNTRY_NAME[home]})",
            )
            clean_region = None

    clean_postal = _clean_text(found, "postal_code", postal_code)
    if clean_postal is not None:
        raw_postal = clean_postal
        if known_country == "US":
            clean_postal = _us_zip(raw_postal)
            expected = _US_ZIP_EXPECTED
        elif known_country == "CA":
            clean_postal = _ca_postal(raw_postal)
            expected = _CA_POSTAL_EXPECTED
        else:
            clean_postal = _us_zip(raw_postal) or _ca_postal(raw_postal)
            expected = f"{_US_ZIP_EXPECTED} or {_CA_POSTAL_EXPECTED}"
        if clean_postal is None:
            found.add(
                "postal_code",
                "invalid_postal_code",
                f"'postal_code' must be {expected} (got {shown(raw_postal)})",
            )
        elif known_country == "CA" and clean_region is not None:
            letters = CA_POSTAL_FIRST_LETTERS[clean_region]
            if clean_postal[0] not in letters:
                found.add(
                    "postal_code",
                    "postal_code_region_mismatch",
                    f"'postal_code' must start with {_one_of(letters)} for region "
                    f"{clean_region} (got {shown(clean_postal)})",
                )
                clean_postal = None

    # Report in the order a form shows the fields, whatever order they were
    # judged in (country comes before region and postal code).
    found.errors.sort(key=_address_field_order)
    if (
        found
        or clean_line1 is None
        or clean_city is None
        or clean_region is None
        or clean_postal is None
        or clean_country is None
    ):
        return None
    return (
        clean_line1,
        clean_line2,
        clean_city,
        clean_region,
        clean_postal,
        clean_country,
    )


_AddressFields = tuple[str, str | None, str, str, str, str]


@functools.lru_cache(maxsize=16_384)
def _text_address(  # noqa: PLR0917 - the six fields are the cache's key
    line1: str, line2: str | None, city: str, region: str, postal_code: str, country: str
) -> _AddressFields:
    """:func:`_clean_address` for fields given as text, cached: every sync
    brings the same addresses back. Raises instead of noting errors (and
    ``lru_cache`` keeps no exceptions)."""
    found = FieldErrors()
    fields = _clean_address(
        line1=line1,
        line2=line2,
        city=city,
        region=region,
        postal_code=postal_code,
        country=country,
        found=found,
    )
    found.raise_if_any()
    return fields  # type: ignore[return-value]  # None only with an error


def _checked_address(found: FieldErrors, values: Mapping[str, object]) -> _AddressFields:
    """The normalised fields, or a ValidationError with every error (those
    already in ``found`` included)."""
    line2 = values["line2"]
    if line2 is _ABSENT:
        line2 = None
    if not found and (line2 is None or type(line2) is str):
        line1, city, region = values["line1"], values["city"], values["region"]
        postal_code, country = values["postal_code"], values["country"]
        if (
            type(line1) is str
            and type(city) is str
            and type(region) is str
            and type(postal_code) is str
            and type(country) is str
        ):
            return _text_address(line1, line2, city, region, postal_code, country)
    fields = _clean_address(**values, found=found)
    found.raise_if_any()
    return fields  # type: ignore[return-value]  # None only with an error


def _address_field_order(error: FieldError) -> int:
    if error.path in _ADDRESS_FIELDS:
        return _ADDRESS_FIELDS.index(error.path)
    return len(_ADDRESS_FIELDS)  # unknown fields last


def _one_of(letters: str) -> str:
    if len(letters) == 1:
        return letters
    return ", ".join(letters[:-1]) + " or " + letters[-1]


@checked_form_constructor
@attrs.frozen(init=False)
class Address:
    """A postal address in the United States or Canada.

    Every field is checked and normalised when the address is built, and every
    invalid field is reported in one :class:`ValidationError`:

    - ``line1`` and ``city`` must not be blank; they are stored trimmed,
      of at most :data:`ADDRESS_LINE_MAX` (200) characters.
    - ``line2`` (suite, unit) is optional: blank becomes None; else as
      ``line1``.
    - ``country`` is ``US`` or ``CA`` (any case; stored upper case).
    - ``region`` is a code from :data:`US_REGIONS` or :data:`CA_REGIONS`
      that matches the country (any case; stored upper case).
    - ``postal_code``: a US ZIP code ``12345`` or ``12345-6789`` (nine bare
      digits become ``12345-6789``), or a Canadian postal code ``A1A 1A1``
      (any case, any number of spaces between its halves, none too; stored
      upper case with one space) whose first letter belongs to the province
      (:data:`CA_POSTAL_FIRST_LETTERS`). Like every code here (ZIP code,
      region, country), it takes no other whitespace inside: a tab or a
      no-break space between the halves is refused; whitespace around it
      is trimmed, as around every field.

    >>> a = Address("1 Main St", "Albany", "ny", "122073301", "us")
    >>> a.region, a.postal_code, a.country
    ('NY', '12207-3301', 'US')
    >>> Address(" 1 Front St W ", "Toronto", "ON", "m5j2n8", "CA").postal_code
    'M5J 2N8'
    >>> try:
    ...     Address("", "Toronto", "ON", "T2P 1J9", "CA")
    ... except ValidationError as e:
    ...     print(e.codes)
    ['blank', 'postal_code_region_mismatch']

    Error codes: ``blank``, ``wrong_type``, ``invalid_text`` (a lone
    surrogate), ``too_long``, ``unknown_country``, ``unknown_region``,
    ``region_country_mismatch``, ``invalid_postal_code``,
    ``postal_code_region_mismatch``; each error's path is the field's name.
    """

    line1: str
    city: str
    region: str
    postal_code: str
    country: str
    line2: str | None = None

    def __init__(  # noqa: PLR0917 - the documented signature is positional
        self,
        line1: str,
        city: str,
        region: str,
        postal_code: str,
        country: str,
        line2: str | None = None,
    ) -> None:
        values = {
            "line1": line1,
            "line2": line2,
            "city": city,
            "region": region,
            "postal_code": postal_code,
            "country": country,
        }
        self._set(_checked_address(FieldErrors(), values))

    def _set(self, fields: _AddressFields) -> None:
        line1, line2, city, region, postal_code, country = fields
        self.__attrs_init__(line1, city, region, postal_code, country, line2)

    @classmethod
    @checked_arguments
    def from_mapping(cls, data: Mapping[str, object]) -> Address:
        """Build an address from a mapping of its fields, as a form posts them.

        Keys are ``line1``, ``line2``, ``city``, ``region``, ``postal_code``
        and ``country``; ``line2`` may be left out. Besides the constructor's
        codes, a required key left out gives ``missing`` and a key not listed
        gives ``unknown_field`` (path: that key). A key is read by its text (a
        subclass of ``str`` as its plain text, and the same text given twice
        so is ``duplicate``). Everything wrong is reported at once.

        >>> Address.from_mapping({"line1": "1 Main St", "city": "Albany",
        ...     "region": "NY", "postal_code": "12207", "country": "US"}).lines()
        ('1 Main St', 'Albany, NY 12207', 'United States')
        >>> try:
        ...     Address.from_mapping({"line1": "1 Main St", "zip": "12207"})
        ... except ValidationError as e:
        ...     print(e.paths)
        ['city', 'region', 'postal_code', 'country', 'zip']
        """
        if not isinstance(data, Mapping):
            raise ValidationError.single(
                "",
                "wrong_type",
                f"'address' must be a mapping of its fields (got {_type_name(data)})",
            )
        found = FieldErrors()
        # Read by the keys' plain text: a str subclass's own __hash__ and
        # __eq__ could make a key that names no field read as one.
        given, keys = text_keyed(found, "", data)
        values: dict[str, object] = {name: given.get(name, _ABSENT) for name in _ADDRESS_FIELDS}
        for name in _ADDRESS_FIELDS:
            if values[name] is _ABSENT and name in _ADDRESS_REQUIRED:
                found.add(name, "missing", f"'{name}' is required")
        # Keys that are not fields (one set test when there is none, as usual).
        if not all(type(key) is str for key in keys) or not _ADDRESS_KEYS.issuperset(keys):
            for key in keys:
                if not isinstance(key, str) or key not in _ADDRESS_KEYS:
                    got = shown(key)
                    found.add(
                        key_text(key),
                        "unknown_field",
                        f"{got} is not a field of an address "
                        f"(expected one of {', '.join(_ADDRESS_FIELDS)})",
                    )
        fields = _checked_address(found, values)
        address = cls.__new__(cls)
        address._set(fields)
        return address

    @checked_arguments
    def lines(self) -> tuple[str, ...]:
        """The address as printed on an invoice, one string per line.

        >>> Address("1 Main St", "Albany", "NY", "12207", "US",
        ...         line2="Suite 4").lines()
        ('1 Main St', 'Suite 4', 'Albany, NY 12207', 'United States')
        """
        printed = [self.line1]
        if self.line2 is not None:
            printed.append(self.line2)
        printed.append(f"{self.city}, {self.region} {self.postal_code}")
        printed.append(_COUNTRY_NAME[self.country])
        return tuple(printed)


# --------------------------------------------------------------------------
# EIN

_EIN_FORMAT: Final = re.compile(r"[0-9]{2}-?[0-9]{7}")


@functools.lru_cache(maxsize=128)
def _ein_prefix_assigned(prefix: str) -> bool:
    """Whether the IRS assigns EINs that start with these two digits.

    python-stdnum keeps the list, and judges a well-formed EIN by its prefix
    alone; its table look-up costs more than the rest of reading a customer,
    so the answer is kept for each of the hundred prefixes.
    """
    return bool(stdnum_ein.is_valid(prefix + "0000000"))


@checked_constructor
@attrs.frozen(init=False, repr=False)
class EIN:
    """A US Employer Identification Number: nine digits, ``XX-XXXXXXX``.

    Accepts the digits with or without the dash (surrounding whitespace is
    trimmed) and checks that the first two digits are a prefix the IRS assigns
    (python-stdnum keeps the list).

    >>> ein = EIN(" 123456789 ")
    >>> str(ein), ein.digits
    ('12-3456789', '123456789')
    >>> EIN("12-3456789") == ein
    True

    Error codes (path empty, the caller puts it under the field's name):
    ``wrong_type``, ``invalid_ein`` (not nine digits in either form) and
    ``ein_prefix_not_assigned``. Messages never repeat the number, which is a
    tax id.
    """

    # Named ``value`` as an init argument, as the constructor takes it, so
    # attrs.evolve and cattrs call ``EIN(value=...)``.
    digits: str = attrs.field(alias="value")
    """The nine digits, without the dash."""

    def __init__(self, value: str | EIN) -> None:
        if isinstance(value, EIN):
            self.__attrs_init__(value.digits)
            return
        if not isinstance(value, str):
            raise ValidationError.single(
                "", "wrong_type", f"'ein' must be a string (got {_type_name(value)})"
            )
        text = str.strip(value)
        # Our own strict check first: stdnum's cleaning would also accept
        # other scripts' digits and stray separators.
        if _EIN_FORMAT.fullmatch(text) is None:
            raise ValidationError.single(
                "",
                "invalid_ein",
                "'ein' must be 9 digits written XX-XXXXXXX or XXXXXXXXX",
            )
        digits = text.replace("-", "")
        if not _ein_prefix_assigned(digits[:2]):
            raise ValidationError.single(
                "",
                "ein_prefix_not_assigned",
                f"'ein' must start with a prefix the IRS assigns (got prefix {digits[:2]})",
            )
        self.__attrs_init__(digits)

    def __str__(self) -> str:
        return f"{self.digits[:2]}-{self.digits[2:]}"

    def __repr__(self) -> str:
        return f"EIN({str(self)!r})"


# --------------------------------------------------------------------------
# External references


_REF_ID_MAX: Final = 255


@checked_constructor
@attrs.frozen(init=False)
class ExternalRef:
    """Where a synced record comes from: an integration and the id it uses.

    Both parts are required and trimmed; ``system`` is stored lower case, so
    ``ConnectWise`` and ``connectwise`` name one system.

    >>> ref = ExternalRef(system="ConnectWise", id=" 4711 ")
    >>> ref
    ExternalRef(system='connectwise', id='4711')
    >>> str(ref)
    'connectwise:4711'

    ``system`` holds at most 50 characters once lower-cased (as an
    integration's name does) and ``id`` at most 255: both are kept in a
    unique index of every store.

    Error codes: ``blank``, ``wrong_type``, ``too_long`` and ``invalid_text``
    (a NUL character or a lone surrogate), with paths ``system`` and ``id``;
    both are reported at once.
    """

    system: str
    id: str

    def __init__(self, system: str, id: str) -> None:
        found = FieldErrors()
        # Lower-cased before its length is checked, as Integration's is:
        # what is stored must read back.
        clean_system = found.check("", system_name, "system", system)
        clean_id = _clean_text(found, "id", id, _REF_ID_MAX)
        found.raise_if_any()
        if clean_system is None or clean_id is None:  # pragma: no cover
            raise AssertionError("unreachable: an error was raised above")
        self.__attrs_init__(clean_system, clean_id)

    def __str__(self) -> str:
        return f"{self.system}:{self.id}"


# --------------------------------------------------------------------------
# Typed ids


_ID_KINDS: dict[str, type[EntityId]] = {}


@checked_constructor
@attrs.frozen(init=False, order=True, repr=False)
class EntityId:
    """The base of typed ids: a string such as ``cus_4f9c...``.

    Each kind of entity has its own subclass with its own prefix, so that a
    :class:`PartnerId` is never equal to a :class:`CustomerId`, even with the
    same text, and a type checker catches one passed for the other. Ids of
    one kind sort by their text.

    ``X.new()`` makes a fresh id (the prefix, ``_``, and 32 lower-case hex
    digits of a random UUID); ``X(text)`` parses an existing one, which must
    be the prefix, ``_``, and 1 to 64 ASCII letters and digits. Anything else
    raises :class:`ValidationError` with code ``invalid_id`` (path empty).
    ``value`` is always a plain ``str``, even for text given as a subclass of
    ``str``.

    >>> CustomerId("cus_abc")
    CustomerId('cus_abc')
    >>> str(CustomerId("cus_abc"))
    'cus_abc'
    >>> CustomerId.new().value.startswith("cus_")
    True
    >>> PartnerId("par_1") == CustomerId("cus_1")
    False

    ``EntityId`` itself is abstract; use one of its subclasses.
    """

    prefix: ClassVar[str] = ""
    """What every id of this kind starts with, before the ``_``."""
    label: ClassVar[str] = "id"
    """How messages name this kind of id (``'customer id'``)."""
    shows_input: ClassVar[bool] = True
    """Whether a message may repeat a malformed id: not a saved payment
    method's, which may be a card number given in the wrong place."""
    _pattern: ClassVar[re.Pattern[str] | None] = None

    value: str
    """The id's text, such as ``cus_4f9c...``."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # One compiled pattern per kind, so parsing is a single fullmatch.
        cls._pattern = re.compile(re.escape(cls.prefix) + "_[0-9A-Za-z]{1,64}")
        # Only a class that names its own prefix is a new kind: a subclass of
        # CustomerId (say) never takes over what EntityId.parse("cus_...") gives.
        if "prefix" in cls.__dict__:
            _ID_KINDS.setdefault(cls.prefix, cls)

    @classmethod
    @checked_arguments
    def parse(cls, value: str) -> Self:
        """Parse an id; on ``EntityId`` itself, of whichever kind its prefix names.

        >>> EntityId.parse("inv_42")
        InvoiceId('inv_42')
        """
        if cls._pattern is not None:
            return cls(value)
        # str.partition, on the plain text: a subclass's own could name another kind.
        kind = _ID_KINDS.get(str.partition(value, "_")[0]) if isinstance(value, str) else None
        if kind is None:
            prefixes = ", ".join(sorted(_ID_KINDS))
            raise ValidationError.single(
                "",
                "invalid_id",
                f"'id' must start with one of the prefixes {prefixes} "
                f"(got {shown(value) if isinstance(value, str) else _type_name(value)})",
            )
        # On EntityId itself (the only class without a pattern), any kind is one.
        return typing.cast(Self, kind(value))

    def __init__(self, value: str | Self) -> None:
        pattern = self._pattern
        if pattern is None:
            # Still a TypeError, as instantiating an abstract class is.
            raise ArgumentError(
                FieldError(
                    "",
                    "abstract",
                    f"{type(self).__name__} is abstract: use a kind of id such as CustomerId,"
                    " or EntityId.parse(text) for whichever kind its prefix names",
                )
            )
        if isinstance(value, EntityId) and type(value) is type(self):
            value = value.value
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            got = _type_name(value) if not isinstance(value, str) else id_text(self, value)
            raise ValidationError.single(
                "",
                "invalid_id",
                f"'{self.label}' must look like {self.prefix}_<letters and digits> (got {got})",
            )
        # Set the slot directly: ids are built by the thousand when records
        # load, and attrs' generic init adds nothing for one checked string.
        # A subclass of str is kept as a plain str: its own __eq__ or
        # __hash__ could make this id equal another, or unhashable.
        object.__setattr__(self, "value", plain_str(value))

    @classmethod
    @checked_arguments
    def new(cls) -> Self:
        """A fresh, random id of this kind.

        >>> len(InvoiceId.new().value) == len("inv_") + 32
        True
        """
        return cls(f"{cls.prefix}_{uuid.uuid4().hex}")

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


@checked_constructor
class PartnerId(EntityId):
    """The id of a partner: ``par_...``."""

    __slots__ = ()
    prefix = "par"
    label = "partner id"


@checked_constructor
class TeamMemberId(EntityId):
    """The id of a partner's team member: ``tm_...``."""

    __slots__ = ()
    prefix = "tm"
    label = "team member id"


@checked_constructor
class CustomerId(EntityId):
    """The id of a customer: ``cus_...``."""

    __slots__ = ()
    prefix = "cus"
    label = "customer id"


@checked_constructor
class UserId(EntityId):
    """The id of a customer user: ``usr_...``."""

    __slots__ = ()
    prefix = "usr"
    label = "user id"


@checked_constructor
class AccessRequestId(EntityId):
    """The id of an access request: ``acr_...``."""

    __slots__ = ()
    prefix = "acr"
    label = "access request id"


@checked_constructor
class TagId(EntityId):
    """The id of a partner's tag: ``tag_...``."""

    __slots__ = ()
    prefix = "tag"
    label = "tag id"


@checked_constructor
class InvoiceId(EntityId):
    """The id of an invoice: ``inv_...``."""

    __slots__ = ()
    prefix = "inv"
    label = "invoice id"


@checked_constructor
class PaymentId(EntityId):
    """The id of a payment: ``pay_...``."""

    __slots__ = ()
    prefix = "pay"
    label = "payment id"


@checked_constructor
class PaymentMethodId(EntityId):
    """The id of a customer's saved payment method: ``pm_...``."""

    __slots__ = ()
    prefix = "pm"
    label = "payment method id"
    shows_input = False
