"""The pure rules of downloads and signed links: safe file names, inline types, ranges,
ETags (service/domain/downloads.py) and link signatures (service/domain/signing.py)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from service.domain.downloads import (
    MAX_NAME_BYTES,
    MAX_RANGES,
    ByteRange,
    RangeAnswer,
    ascii_name,
    clean_name,
    content_disposition,
    etag_of,
    if_none_match,
    if_range_allows,
    inline_allowed,
    parse_range,
    sent_content_type,
)
from service.domain.signing import MAX_TTL, Keyring, file_path, key_id_of, sign, verify
from service.errors import LinkRefused

# ------------------------------------------------------------------ names

_DISPOSITION = re.compile(
    r"(attachment|inline); filename=\"([\x20\x21\x23-\x5b\x5d-\x7e]+)\"; "
    r"filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)"
)


def _parsed(header: str) -> tuple[str, str, str]:
    """A Content-Disposition's kind, ASCII name and decoded UTF-8 name; fails unless it has
    exactly the safe shape."""
    match = _DISPOSITION.fullmatch(header)
    assert match is not None, header
    return match[1], match[2], unquote(match[3], errors="strict")


@pytest.mark.parametrize(
    ("given", "ascii", "utf8"),
    [
        ("report.pdf", "report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe", "cmd.exe"),
        ("a/b\\c.txt", "c.txt", "c.txt"),
        ("nul\x00byte.txt", "nulbyte.txt", "nulbyte.txt"),
        ("tab\tand\r\nnewline.txt", "tabandnewline.txt", "tabandnewline.txt"),
        ('say "hi".txt', "say _hi_.txt", 'say "hi".txt'),
        ("back\\slash", "slash", "slash"),
        ("100%.txt", "100_.txt", "100%.txt"),
        ("evil\u202egpj.exe", "evilgpj.exe", "evilgpj.exe"),
        ("\u2066\u200fx\u200e\u2069.png", "x.png", "x.png"),
        ("café.pdf", "cafe.pdf", "café.pdf"),
        ("Ångström résumé.docx", "Angstrom resume.docx", "Ångström résumé.docx"),
        ("📎 plan.pdf", "plan.pdf", "📎 plan.pdf"),
        ("👨‍👩‍👧.png", "download.png", "👨‍👩‍👧.png"),
        ("日本語.pdf", "download.pdf", "日本語.pdf"),
        ("", "download", "download"),
        ("..", "download", "download"),
        ("../", "download", "download"),
        ("/", "download", "download"),
        ("\x00\u202e", "download", "download"),
        ("   .hidden", "hidden", "hidden"),
        ("trailing. . ", "trailing", "trailing"),
        ("a;b=c.txt", "a;b=c.txt", "a;b=c.txt"),
        ("lone\ud800surrogate", "lonesurrogate", "lonesurrogate"),
    ],
)
def test_hostile_names_become_safe_ones(given: str, ascii: str, utf8: str) -> None:
    """Path parts, control characters, NUL, quotes, backslashes, direction overrides and
    surrogates never reach the header; accents and emoji survive in filename*; nothing
    empty is ever sent."""
    kind, sent_ascii, sent_utf8 = _parsed(content_disposition(given, inline=False))
    assert (kind, sent_ascii, sent_utf8) == ("attachment", ascii, utf8)


def test_inline_is_said_when_asked() -> None:
    """``inline=True`` makes an inline disposition with the same names."""
    assert _parsed(content_disposition("photo.jpg", inline=True)) == (
        "inline",
        "photo.jpg",
        "photo.jpg",
    )


@pytest.mark.parametrize(
    "given",
    ["a" * 10_000 + ".pdf", "é" * 5_000 + ".tar.gz", "😀" * 1_000, "x" * 300 + "." + "y" * 40],
)
def test_very_long_names_are_cut_keeping_their_extension(given: str) -> None:
    """A name longer than the limit is cut to it, its (short) extension kept."""
    cleaned = clean_name(given)
    assert len(cleaned.encode()) <= MAX_NAME_BYTES
    assert cleaned
    extension = given.rpartition(".")[2]
    if "." in given and len(extension) <= 16:
        assert cleaned.endswith("." + extension)
    _, sent_ascii, sent_utf8 = _parsed(content_disposition(given, inline=False))
    assert sent_utf8 == cleaned
    assert len(sent_ascii) <= MAX_NAME_BYTES


def test_the_ascii_name_is_always_printable_ascii() -> None:
    """Whatever the name, the fallback is printable ASCII without quotes, backslashes or %."""
    for char in map(chr, range(0x20, 0x3000, 7)):
        fallback = ascii_name(clean_name(f"a{char}b"))
        assert fallback.isascii(), repr(char)
        assert fallback.isprintable(), repr(char)
        assert not set('"\\%') & set(fallback), repr(char)


# ------------------------------------------------------------------ types


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "image/jpeg", "IMAGE/GIF", "image/webp", "image/avif", "image/bmp; x=y"],
)
def test_raster_images_may_be_inline(content_type: str) -> None:
    """Raster images, whatever their case or parameters, may be shown inline."""
    assert inline_allowed(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "image/svg+xml",
        "text/html",
        "text/html; charset=utf-8",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/pdf",
        "text/plain",
        "text/javascript",
        "application/octet-stream",
        "image/png+svg",
        "image/x-icon",
        "",
        "garbage",
    ],
)
def test_nothing_else_is_inline(content_type: str) -> None:
    """SVG, HTML, XML, PDF, text and anything unknown are always attachments."""
    assert not inline_allowed(content_type)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('multipart/mixed; boundary="a b"', 'multipart/mixed; boundary="a b"'),
        ("text/html\r\nSet-Cookie: x=1", "application/octet-stream"),
        ("text/plain; charset=é", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_the_stored_type_is_sent_only_when_well_formed(given: str, sent: str) -> None:
    """A malformed stored type (a header injection, non-ASCII) is sent as octet-stream."""
    assert sent_content_type(given) == sent


# ------------------------------------------------------------------ ranges


def _r(*pairs: tuple[int, int]) -> tuple[ByteRange, ...]:
    return tuple(ByteRange(a, b) for a, b in pairs)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, RangeAnswer.FULL),
        ("bytes=0-0", 10, _r((0, 0))),
        ("bytes=9-9", 10, _r((9, 9))),
        ("bytes=-1", 10, _r((9, 9))),
        ("bytes=5-", 10, _r((5, 9))),
        ("bytes=0-", 10, _r((0, 9))),
        ("bytes=0-999", 10, _r((0, 9))),
        ("bytes=-999", 10, _r((0, 9))),
        ("BYTES = 2-3", 10, _r((2, 3))),
        ("bytes=0-1, 4-5", 10, _r((0, 1), (4, 5))),
        ("bytes=4-5,0-1", 10, _r((0, 1), (4, 5))),
        ("bytes=0-4,2-6", 10, _r((0, 6))),
        ("bytes=0-1,2-3", 10, _r((0, 3))),
        ("bytes=0-0,0-0,0-0", 10, _r((0, 0))),
        ("bytes=0-1,-2", 10, _r((0, 1), (8, 9))),
        ("bytes=0-1,20-30", 10, _r((0, 1))),
        ("bytes=0-1,,3-4,", 10, _r((0, 1), (3, 4))),
        ("bytes=-0,1-1", 10, _r((1, 1))),
        ("bytes=10-", 10, RangeAnswer.UNSATISFIABLE),
        ("bytes=10-20", 10, RangeAnswer.UNSATISFIABLE),
        ("bytes=-0", 10, RangeAnswer.UNSATISFIABLE),
        ("bytes=10-11,20-", 10, RangeAnswer.UNSATISFIABLE),
        ("bytes=0-0", 0, RangeAnswer.UNSATISFIABLE),
        ("bytes=0-", 0, RangeAnswer.UNSATISFIABLE),
        ("bytes=-5", 0, RangeAnswer.FULL),
        ("bytes=-0", 0, RangeAnswer.UNSATISFIABLE),
        ("bytes=5-4", 10, RangeAnswer.IGNORE),
        ("bytes=-", 10, RangeAnswer.IGNORE),
        ("bytes=", 10, RangeAnswer.IGNORE),
        ("bytes=,", 10, RangeAnswer.IGNORE),
        ("bytes=a-b", 10, RangeAnswer.IGNORE),
        ("bytes=1-2-3", 10, RangeAnswer.IGNORE),
        ("bytes=+1-2", 10, RangeAnswer.IGNORE),
        ("bytes=1 - 2", 10, RangeAnswer.IGNORE),
        ("bytes=0-1,x", 10, RangeAnswer.IGNORE),
        ("bytes 0-1", 10, RangeAnswer.IGNORE),
        ("items=0-1", 10, RangeAnswer.IGNORE),
        ("", 10, RangeAnswer.IGNORE),
        ("bytes=٠-١", 10, RangeAnswer.IGNORE),
    ],
)
def test_ranges(header: str | None, size: int, expected: object) -> None:
    """RFC 9110 §14: first byte, last byte, suffixes, open ends, ranges past the end cut or
    dropped, overlapping and adjacent ones merged, malformed headers ignored, and
    well-formed ones that miss the file unsatisfiable (an empty file included)."""
    assert parse_range(header, size) == expected


def test_too_many_ranges_are_ignored() -> None:
    """Up to MAX_RANGES specs are served; one more and the header is ignored (200)."""
    allowed = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES))
    assert parse_range(allowed, 1000) == _r(*((2 * i, 2 * i) for i in range(MAX_RANGES)))
    assert parse_range(allowed + ",100-100", 1000) is RangeAnswer.IGNORE


def test_huge_numbers_are_cut_at_the_end() -> None:
    """Positions far past any file are no error: a range is cut at the file's end."""
    assert parse_range("bytes=5-" + "9" * 40, 10) == _r((5, 9))
    assert parse_range("bytes=" + "9" * 40 + "-", 10) is RangeAnswer.UNSATISFIABLE


def test_a_range_names_its_content_range() -> None:
    """A range's Content-Range names its first and last byte and the file's size."""
    assert ByteRange(0, 0).content_range(10) == "bytes 0-0/10"
    assert ByteRange(3, 7).length == 5


# ------------------------------------------------------------------ ETags

SHA = "a" * 64
TAG = etag_of(SHA)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        (TAG, True),
        (f"W/{TAG}", True),
        ("*", True),
        (f'"other", {TAG}', True),
        (f'"other",W/{TAG} , "x"', True),
        ('"other"', False),
        (SHA, False),
        (f"{TAG[:-1]}", False),
        ('"a,b", "c"', False),
        (f'"a,b", {TAG}', True),
        ("garbage, *", False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    """Weak comparison against the quoted SHA-256, ``*`` and lists (a comma inside a tag
    included); an unquoted or malformed header matches nothing."""
    assert etag_of(SHA) == f'"{SHA}"'
    assert if_none_match(header, TAG) is matches


@pytest.mark.parametrize(
    ("header", "allows"),
    [(None, True), (TAG, True), (f" {TAG} ", True), (f"W/{TAG}", False), ('"b"', False)],
)
def test_if_range(header: str | None, allows: bool) -> None:
    """A range applies only while If-Range names these bytes by strong comparison; a date
    or another tag gets the whole file."""
    assert if_range_allows(header, TAG) is allows


def test_if_range_with_a_date_sends_the_whole_file() -> None:
    """If-Range with a date cannot vouch for content-addressed bytes: whole file."""
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", TAG)


# ------------------------------------------------------------------ signed links

KEYS = Keyring(secrets={"k1": b"1" * 32, "k2": b"2" * 32}, current="k2")
NOW = 1_800_000_000
PATH = file_path("rec_0123abcd", 3)


def test_a_signed_link_checks_until_it_expires() -> None:
    """A link minted now checks until its expiry, then never again."""
    link = sign(KEYS, PATH, now=NOW)
    assert link.path == "/files/rec_0123abcd/versions/3"
    assert link.expires == NOW + MAX_TTL
    assert link.url == f"{PATH}?expires={link.expires}&signature={link.signature}"
    assert key_id_of(link.signature) == "k2"
    for at in (NOW, NOW + MAX_TTL - 1):
        verify(KEYS, PATH, str(link.expires), link.signature, now=at)
    for at in (NOW + MAX_TTL, NOW + MAX_TTL + 1, NOW + 10**6):
        with pytest.raises(LinkRefused, match="expired"):
            verify(KEYS, PATH, str(link.expires), link.signature, now=at)


def test_tampered_links_are_refused() -> None:
    """Another path (recording or version), a later expiry, a changed or truncated
    signature, another key's id, missing parameters: all refused."""
    link = sign(KEYS, PATH, now=NOW, ttl=60)
    expires, signature = str(link.expires), link.signature
    key_id, mac = signature.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    cases = [
        (file_path("rec_0123abcd", 2), expires, signature, "does not match"),
        (file_path("rec_0123abce", 3), expires, signature, "does not match"),
        (PATH + "/", expires, signature, "does not match"),
        (PATH, str(link.expires + 1), signature, "does not match"),
        (PATH, expires, f"{key_id}.{flipped}", "does not match"),
        (PATH, expires, f"k1.{mac}", "does not match"),
        (PATH, expires, f"k9.{mac}", "no longer kept"),
        (PATH, expires, mac, "malformed"),
        (PATH, expires, signature[:-1], "malformed"),
        (PATH, expires, signature + "=", "malformed"),
        (PATH, "-1", signature, "malformed"),
        (PATH, "1e9", signature, "malformed"),
        (PATH, None, signature, "no expires"),
        (PATH, expires, None, "no signature"),
    ]
    for path, until, sig, why in cases:
        with pytest.raises(LinkRefused, match=why):
            verify(KEYS, path, until, sig, now=NOW)


def test_a_link_expiring_too_far_ahead_is_refused() -> None:
    """Even correctly signed, a link expiring later than any link is minted for is refused
    (beyond the clock skew allowed between instances); none can be minted either."""
    far = Keyring(secrets=KEYS.secrets, current="k1")
    minted_later = sign(far, PATH, now=NOW + 30)
    verify(KEYS, PATH, str(minted_later.expires), minted_later.signature, now=NOW)
    too_far = sign(far, PATH, now=NOW + 31)
    with pytest.raises(LinkRefused, match="later than"):
        verify(KEYS, PATH, str(too_far.expires), too_far.signature, now=NOW)
    for ttl in (0, -1, MAX_TTL + 1):
        with pytest.raises(ValueError, match="seconds"):
            sign(KEYS, PATH, now=NOW, ttl=ttl)


def test_links_signed_with_an_older_key_check_after_rotation() -> None:
    """After a rotation the new key signs; links of the old one check while it is kept,
    and are refused once it is gone."""
    old = sign(Keyring(secrets={"k1": b"1" * 32}, current="k1"), PATH, now=NOW)
    verify(KEYS, PATH, str(old.expires), old.signature, now=NOW)
    assert key_id_of(sign(KEYS, PATH, now=NOW).signature) == "k2"
    only_new = Keyring(secrets={"k2": b"2" * 32}, current="k2")
    with pytest.raises(LinkRefused, match="no longer kept"):
        verify(only_new, PATH, str(old.expires), old.signature, now=NOW)


@pytest.mark.parametrize("path", ["files/x", "/files/x?y=1", "/files/x#y", "/files/\nx"])
def test_only_paths_are_signed(path: str) -> None:
    """A query, fragment, newline or relative path cannot be signed."""
    with pytest.raises(ValueError, match="not a path"):
        sign(KEYS, path, now=NOW)


def test_a_keyring_names_its_current_key_and_safe_ids() -> None:
    """The current key must be in the keyring; key ids are short lowercase words."""
    with pytest.raises(ValueError, match="current"):
        Keyring(secrets={"k1": b"1" * 32}, current="k2")
    with pytest.raises(ValueError, match="bad key id"):
        Keyring(secrets={"K.1": b"1" * 32}, current="K.1")
