"""Bounded decompression of report attachments: gzip and zip with size and member caps.

A report attachment comes from whoever sends mail to the report address, so
the readers here treat it as hostile: the declared sizes in a zip directory
are not trusted, every read stops one byte past the cap, and a zip with
more members than a report ever has is rejected before anything is read.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import IO, Final, final

import msgspec

# A DMARC aggregate report from a large mailbox provider is a few MiB of XML.
DEFAULT_MAX_UNCOMPRESSED: Final = 32 * 1024 * 1024
# A report zip contains one XML file; a few more are tolerated.
DEFAULT_MAX_MEMBERS: Final = 8
_CHUNK: Final = 64 * 1024


class ArchiveError(ValueError):
    """A compressed attachment is corrupt or exceeds the configured limits."""


@final
class ArchiveLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Caps on what a compressed report may expand to."""

    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED
    max_members: int = DEFAULT_MAX_MEMBERS


def is_gzip(data: bytes) -> bool:
    """Return True when the data starts with the gzip magic number."""
    return data[:2] == b"\x1f\x8b"


def is_zip(data: bytes) -> bool:
    """Return True when the data starts with a zip local file header."""
    return data[:4] == b"PK\x03\x04"


def gunzip(data: bytes, limits: ArchiveLimits) -> bytes:
    """Decompress the first gzip member, raising ArchiveError past the size cap or on corrupt input.

    Bytes after the first member are ignored: some reporters append a line
    break to the attachment.
    """
    cap = limits.max_uncompressed_bytes
    decompressor = zlib.decompressobj(wbits=31)
    try:
        # max_length stops inflation one byte past the cap, whatever the ratio.
        output = decompressor.decompress(data, cap + 1)
    except zlib.error as error:
        raise ArchiveError(f"invalid gzip data: {error}") from error

    if len(output) > cap:
        raise ArchiveError(
            f"gzip data expands beyond {cap} bytes; raise max_uncompressed_bytes if the "
            "report is genuine"
        )
    if not decompressor.eof:
        raise ArchiveError("gzip data is truncated")
    return output


def unzip_first(data: bytes, limits: ArchiveLimits, *, suffixes: tuple[str, ...]) -> bytes:
    """Return the first member whose name ends with one of the suffixes, read with the cap."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ArchiveError(f"invalid zip data: {error}") from error

    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > limits.max_members:
            raise ArchiveError(
                f"zip has {len(members)} members, over the limit of {limits.max_members}"
            )
        if not members:
            raise ArchiveError("zip has no files")

        chosen = next(
            (info for info in members if info.filename.lower().endswith(suffixes)), members[0]
        )
        try:
            with archive.open(chosen) as stream:
                return _read_capped(stream, limits.max_uncompressed_bytes, chosen.filename)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as error:
            # RuntimeError: an encrypted member; NotImplementedError: an unknown method.
            raise ArchiveError(f"cannot read zip member {chosen.filename!r}: {error}") from error


def _read_capped(stream: IO[bytes], cap: int, name: str) -> bytes:
    buffer = bytearray()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return bytes(buffer)
        buffer.extend(chunk)
        if len(buffer) > cap:
            raise ArchiveError(
                f"{name} expands beyond {cap} bytes; raise max_uncompressed_bytes if the "
                "report is genuine"
            )
