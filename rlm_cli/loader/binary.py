"""Binary detection from a file's first bytes only (:data:`PREFIX_BYTES`), never the whole file.

A prefix is binary when it starts with a known signature (images, archives, executables, fonts,
databases, media...), contains a NUL byte (git's own test, over its first 8,000 bytes), or is more than
:data:`CONTROL_RATIO` C0 control characters. UTF-16/32 text starts with a byte order mark and holds
NULs by design: a BOM makes the prefix text.
"""

from __future__ import annotations

PREFIX_BYTES = 8192  # bytes read to decide
CONTROL_RATIO = 0.10  # share of control bytes (other than \t \n \v \f \r \b ESC) above which it is binary

# (signature, offset, name); checked in order. Only signatures that a text file cannot plausibly
# start with: short ones (e.g. "MZ", "BM") are left to the NUL test, which catches those formats.
SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG image"), (b"GIF87a", 0, "GIF image"), (b"GIF89a", 0, "GIF image"),
    (b"\xff\xd8\xff", 0, "JPEG image"), (b"RIFF", 0, "RIFF media (WAV/AVI/WebP)"),
    (b"II*\x00", 0, "TIFF image"), (b"MM\x00*", 0, "TIFF image"), (b"8BPS", 0, "Photoshop image"),
    (b"\x00\x00\x01\x00", 0, "icon"), (b"ftyp", 4, "MP4/QuickTime media"), (b"OggS", 0, "Ogg media"),
    (b"ID3\x03", 0, "MP3 audio"), (b"ID3\x04", 0, "MP3 audio"), (b"fLaC", 0, "FLAC audio"), (b"\x1aE\xdf\xa3", 0, "Matroska/WebM media"),
    (b"%PDF-", 0, "PDF document"), (b"PK\x03\x04", 0, "ZIP archive (also jar, docx, xlsx, wheel)"),
    (b"PK\x05\x06", 0, "ZIP archive"), (b"\x1f\x8b", 0, "gzip data"), *((b"BZh%d1AY&SY" % level, 0, "bzip2 data") for level in range(1, 10)),
    (b"\xfd7zXZ\x00", 0, "xz data"), (b"\x28\xb5\x2f\xfd", 0, "zstd data"),
    (b"\x04\x22\x4d\x18", 0, "LZ4 data"), (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "RAR archive"), (b"ustar", 257, "tar archive"),
    (b"\x7fELF", 0, "ELF executable"), (b"\xca\xfe\xba\xbe", 0, "Mach-O or Java class"),
    (b"\xfe\xed\xfa\xce", 0, "Mach-O executable"), (b"\xfe\xed\xfa\xcf", 0, "Mach-O executable"),
    (b"\xce\xfa\xed\xfe", 0, "Mach-O executable"), (b"\xcf\xfa\xed\xfe", 0, "Mach-O executable"),
    (b"\x00asm", 0, "WebAssembly"), (b"dex\n", 0, "Android dex"),
    (b"SQLite format 3\x00", 0, "SQLite database"), (b"PAR1\x15", 0, "Parquet data"),
    (b"ARROW1", 0, "Arrow data"), (b"\x93NUMPY", 0, "NumPy array"), (b"\x89HDF\r\n\x1a\n", 0, "HDF5 data"),
    (b"\x80\x04\x95", 0, "Python pickle"), (b"\x80\x05\x95", 0, "Python pickle"),
    (b"wOFF", 0, "WOFF font"), (b"wOF2", 0, "WOFF2 font"), (b"OTTO\x00", 0, "OpenType font"),
    (b"\x00\x01\x00\x00\x00", 0, "TrueType font"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "MS Office document"),
    (b"!<arch>\n", 0, "ar archive (.a, .deb)"), (b"\xed\xab\xee\xdb", 0, "RPM package"),
)
_BY_FIRST_BYTE: dict[int, list[tuple[bytes, int, str]]] = {}
for _sig in SIGNATURES:
    if _sig[1] == 0:
        _BY_FIRST_BYTE.setdefault(_sig[0][0], []).append(_sig)
_AT_OFFSET = [s for s in SIGNATURES if s[1] != 0]
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_ALLOWED_CONTROLS = frozenset(b"\t\n\v\f\r\b\x1b")
_CONTROLS = bytes(c for c in range(32) if c not in _ALLOWED_CONTROLS) + b"\x7f"


def binary_reason(prefix: bytes) -> str | None:
    """Why ``prefix`` (a file's first bytes, up to :data:`PREFIX_BYTES`) is binary, or ``None`` for text.

    The reason reads like ``"binary (PNG image)"`` or ``"binary (NUL bytes)"``.
    """
    prefix = prefix[:PREFIX_BYTES]
    if not prefix:
        return None
    for sig, offset, name in _BY_FIRST_BYTE.get(prefix[0], ()):
        if prefix.startswith(sig, offset):
            return f"binary ({name})"
    for sig, offset, name in _AT_OFFSET:
        if prefix.startswith(sig, offset):
            return f"binary ({name})"
    if prefix.startswith(_TEXT_BOMS):  # UTF-8/16/32 text (UTF-32-LE's BOM starts like UTF-16-LE's)
        return None
    if b"\0" in prefix:
        return "binary (NUL bytes)"
    # bytes.translate with a deletion list keeps only non-control bytes: the rest were controls
    controls = len(prefix) - len(prefix.translate(None, _CONTROLS))
    if controls > CONTROL_RATIO * len(prefix):
        return "binary (control characters)"
    return None

