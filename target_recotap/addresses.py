"""Addresses both sides judge alike: email addresses as Recotap judges them, account domains as
Recotap cleans them, loopback hosts.

The one module of the target that the emulator (recotap_emulator) imports, so it holds nothing
but the standard library. The target judges an email before sending it, and the emulator as
Recotap would. The target cleans a domain as Recotap will, so that two records of one account
become one item and a deal names its account as Recotap holds it; the emulator cleans it as
Recotap does. The target sends the API key over plain http only to a loopback host, and the
emulator listens on no other.

``is_email`` is validator.js ``isEmail`` with its defaults. Recotap's ``ownerEmail must be an
email`` is class-validator's ``@IsEmail()``, which calls validator.js ``isEmail(value, {})``
(validator 13.15: src/lib/isEmail.js, isFQDN.js and isByteLength.js); this is a port of what
those defaults do. JavaScript strings are UTF-16, so lengths are counted in UTF-16 code units
where validator.js uses ``.length``, and in UTF-8 bytes where it uses ``isByteLength``. No
surrounding white space is allowed: the caller strips it.

Its rules, in order (validator.js's own test cases are in tests/test_emails.py):

1. At most 254 UTF-16 code units in all.
2. The domain is what follows the last ``@``; the local part is everything before it (an
   ``@`` in it passes only inside quotes: ``"a@b"@example.com``).
3. The local part is at most 64 UTF-8 bytes and the domain at most 254.
4. The domain (isFQDN with ``require_tld``, no underscores, no trailing dot, no numeric TLD):
   labels split on ``.``, at least two; the last (the TLD) is 2 or more letters, ASCII or
   from U+00A1-U+00A8, U+00AA-U+D7FF, U+F900-U+FDCF, U+FDF0-U+FFEF (``例え.jp``, ``.рф``),
   or ``xn`` and 2 or more ASCII letters, digits and hyphens (punycode: ``xn--p1ai``), with no
   white space; every label is 1 to 63 UTF-16 code units of ASCII letters, digits, hyphens
   or characters from U+00A1 up, with no full-width ASCII (U+FF01-U+FF5E, as in a full-width
   "gmail"), no hyphen first or last and no underscore (``foo@_bar.com`` fails).
5. A local part that starts and ends with ``"`` is quoted: inside, any run of white space (LF
   and CR included), other control characters but NUL, printable ASCII other than ``"`` and
   ``\\``, and characters from U+00A0-U+D7FF, U+F900-U+FDCF, U+FDF0-U+FFEF; or a backslash
   and any of those or ASCII other than NUL and LF. Empty quotes pass (``""@example.com``).
6. Any other local part is dot-separated atoms, none empty (no leading, trailing or doubled
   dot): ASCII letters, digits, ``!#$%&'*+-/=?^_`{|}~`` and characters from U+00A1-U+D7FF,
   U+F900-U+FDCF, U+FDF0-U+FFEF (``jané``, ``hans.m端ller``; no space, no U+00A0, nothing
   beyond U+FFFF such as emoji).

A newline passes only inside quotes, as in validator.js: elsewhere no rule allows it, and
``fullmatch`` (unlike a pattern ending in ``$``) lets no final newline through.
"""

from __future__ import annotations

import ipaddress
import re

MAX_LENGTH = 254
MAX_LOCAL_BYTES = 64
MAX_DOMAIN_BYTES = 254
MAX_LABEL_LENGTH = 63

# JavaScript's \s, which differs from Python's (no U+001C-U+001F or U+0085; U+FEFF is one).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# The end of validator.js's "UTF-8" ranges: the BMP after the surrogates and the private use
# area, without U+FDD0-U+FDEF and the specials. Nothing beyond U+FFFF: JavaScript sees a
# surrogate pair there, which these ranges leave out.
_BMP_TAIL = "\uf900-\ufdcf\ufdf0-\uffef"

_ATOM = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~\u00a1-\ud7ff{_BMP_TAIL}]+"
_DOT_ATOMS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_QUOTED_INSIDE = re.compile(
    rf"(?:[{_JS_SPACE}\x01-\x08\x0b\x0c\x0e-\x1f\x7f\x21\x23-\x5b\x5d-\x7e\u00a0-\ud7ff{_BMP_TAIL}]"
    rf"|\\[\x01-\x09\x0b-\x7f\u00a0-\ud7ff{_BMP_TAIL}])*"
)
# A label: ASCII letters and digits and any character from U+00A1 up (a pair of surrogates
# in JavaScript), except full-width ASCII; hyphens inside; no underscore. The TLD is a label
# that is also letters only or punycode. Lengths are counted here in characters, which is
# JavaScript's count unless a label holds characters beyond U+FFFF (``_is_domain`` then
# counts again).
_LABEL_CHAR = r"A-Za-z0-9\u00a1-\uff00\uff5f-\U0010ffff"
_LABEL = rf"[{_LABEL_CHAR}](?:[{_LABEL_CHAR}-]{{0,{MAX_LABEL_LENGTH - 2}}}[{_LABEL_CHAR}])?"
_TLD_LETTERS = (
    r"[A-Za-z\u00a1-\u00a8\u00aa-\ud7ff\uf900-\ufdcf\ufdf0-\uff00\uff5f-\uffef]"
    rf"{{2,{MAX_LABEL_LENGTH}}}"
)
_PUNYCODE_TLD = rf"[xX][nN][A-Za-z0-9-]{{1,{MAX_LABEL_LENGTH - 3}}}[A-Za-z0-9]"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+(?:{_TLD_LETTERS}|{_PUNYCODE_TLD})")
_HAS_JS_SPACE = re.compile(f"[{_JS_SPACE}]")


def is_email(text: str) -> bool:
    """Whether validator.js ``isEmail(text)`` with default options is true."""
    if _utf16_length(text) > MAX_LENGTH:
        return False
    local, _, domain = text.rpartition("@")
    if _utf8_length(local) > MAX_LOCAL_BYTES or _utf8_length(domain) > MAX_DOMAIN_BYTES:
        return False
    if not _is_domain(domain):
        return False
    if len(local) >= 1 and local[0] == '"' and local[-1] == '"':
        # validator.js takes a lone '"' as empty quotes too: slice(1, 0) is ''.
        return _QUOTED_INSIDE.fullmatch(local[1:-1]) is not None
    return _DOT_ATOMS.fullmatch(local) is not None


def _is_domain(domain: str) -> bool:
    if _DOMAIN.fullmatch(domain) is None:
        return False
    if domain.isascii():
        return True
    *labels, tld = domain.split(".")
    return _HAS_JS_SPACE.search(tld) is None and all(
        _utf16_length(label) <= MAX_LABEL_LENGTH for label in labels
    )


def _utf16_length(text: str) -> int:
    """JavaScript's ``.length``: characters beyond U+FFFF count twice."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf8_length(text: str) -> int:
    """validator.js's isByteLength: a lone surrogate counts as U+FFFD's three bytes."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (so plain http cannot leak the key)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A leading scheme, of any kind and case ("https://", "HTTP://").
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Where a host ends and the rest of a URL (path, query, fragment) begins.
_AFTER_HOST = re.compile(r"[/?#]")


def clean_domain(text: str) -> str:
    """``text`` as Recotap stores an account domain: a leading scheme, a leading ``www.`` and
    anything after the host removed, the rest lower-cased (``https://www.Acme.com/foo`` is
    ``acme.com``); surrounding white space goes too. Empty when no host is left.

    The reference strips ``www.`` and lower-cases, without saying in which order: ``WWW.`` is
    taken off too, as domains are case-insensitive. What it leaves undocumented (ports, other
    sub-domains, trailing dots, IDNs) is kept as written: guessing there could merge two
    accounts Recotap keeps apart.
    """
    match = _SCHEME.match(text := text.strip())
    host = _AFTER_HOST.split(text[match.end() :] if match else text, maxsplit=1)[0].lower()
    return host.removeprefix("www.")
