"""The port of validator.js isEmail (default options), judged by validator.js's own cases."""

from __future__ import annotations

import pytest

from target_recotap.addresses import is_email

FULL_WIDTH_GMAIL = "\uff47\uff4d\uff41\uff49\uff4c"

# validator.js 13.15.35, test/validators.test.js, "should validate email addresses".
VALIDATOR_JS_VALID = [
    "foo@bar.com",
    "x@x.au",
    "foo@bar.com.au",
    "foo+bar@bar.com",
    "hans.m端ller@test.com",
    "hans@m端ller.com",
    "test|123@m端ller.com",
    "test123+ext@gmail.com",
    "some.name.midd.leNa.me.and.locality+extension@GoogleMail.com",
    '"foobar"@example.com',
    '"  foo  m端ller "@example.com',
    '"foo\\@bar"@example.com',
    f"{'a' * 64}@{'a' * 63}.com",
    f"{'a' * 31}@gmail.com",
    "test@gmail.com",
    "test.1@gmail.com",
    "test@1337.com",
]
VALIDATOR_JS_INVALID = [
    "invalidemail@",
    "invalid.com",
    "@invalid.com",
    "foo@bar.com.",
    "foo@_bar.com",
    f"somename@{FULL_WIDTH_GMAIL}.com",
    "foo@bar.co.uk.",
    "z@co.c",
    f"{FULL_WIDTH_GMAIL * 5}@gmail.com",
    f"{'a' * 64}@{'a' * 251}.com",
    f"{'a' * 65}@{'a' * 250}.com",
    f"{'a' * 64}@{'a' * 64}.com",
    f"{'a' * 64}@{'a' * 63}.{'a' * 63}.{'a' * 63}.{'a' * 58}.com",
    *(
        f"test{n}@invalid.co{space}m"
        for n, space in enumerate(
            "\u2006\u2002\u2004\u2005\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
        )
    ),
    "multiple..dots@stillinvalid.com",
    "test123+invalid! sub_address@gmail.com",
    "gmail...ignores...dots...@gmail.com",
    "ends.with.dot.@gmail.com",
    "multiple..dots@gmail.com",
    'wrong()[]",:;<>@@gmail.com',
    '"wrong()[]",:;<>@@gmail.com',
    "username@domain.com\ufffd",
    "username@domain.com\xa9",
    "nbsp\xa0test@test.com",
    "nbsp_test@te\xa0st.com",
    "nbsp_test@test.co\xa0m",
    '"foobar@gmail.com',
    '"foo"bar@gmail.com',
    'foo"bar"@gmail.com',
]


@pytest.mark.parametrize("address", VALIDATOR_JS_VALID)
def test_what_validator_js_takes(address):
    assert is_email(address)


@pytest.mark.parametrize("address", VALIDATOR_JS_INVALID)
def test_what_validator_js_refuses(address):
    assert not is_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "jane@例え.jp",  # an IDN domain and TLD
        "jané@example.com",  # a UTF-8 local part
        "jane@xn--r8jz45g.xn--q9jyb4c",  # punycode labels and TLD
        "jane@пример.рф",
        "jane@🚀.com",  # a label may hold characters beyond U+FFFF, the TLD may not
        '"jane doe"@example.com',
        '"a@b"@example.com',  # an @ inside quotes
        '""@example.com',
        '"jane\ndoe"@example.com',  # inside quotes, white space includes a newline
        "jane@a-b.example.com",
        f"{'é' * 32}@example.com",  # 64 UTF-8 bytes
    ],
)
def test_what_else_recotap_takes(address):
    assert is_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "jane@example.com\n",  # a final newline: what `$` would have let through
        "jane@example.com ",  # surrounding white space is the caller's to strip
        " jane@example.com",
        "jane@exam\nple.com",
        '"jane\\\ndoe"@example.com',  # a backslash may escape anything but NUL and LF
        "ja ne@example.com",
        "jane@example",  # no TLD
        "jane@example.c0m",  # a TLD with a digit that is not punycode
        "jane@example.xn--",  # punycode TLD ending with a hyphen
        "jane@-example.com",
        "jane@example-.com",
        "jane@exa_mple.com",
        "jane@127.0.0.1",
        "jane@[127.0.0.1]",
        "jane@example.🚀",
        "🚀@example.com",  # beyond U+FFFF in the local part
        "Jane Doe <jane@example.com>",  # display names are off by default
        f"{'é' * 33}@example.com",  # 66 UTF-8 bytes
        f"jane@{'🚀' * 32}.com",  # 64 UTF-16 code units in one label
        "jane@example.com\ud800",  # a lone surrogate
        "",
        "@",
    ],
)
def test_what_else_recotap_refuses(address):
    assert not is_email(address)
