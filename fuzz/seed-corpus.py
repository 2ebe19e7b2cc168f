#!/usr/bin/env python3
"""Seeds for the byte-stream fuzz targets, cut from the real captures.

    python3 fuzz/seed-corpus.py OUTDIR

writes OUTDIR/<target>/<name> for framer, client_bytes and server_bytes. The
checked-in corpus (fuzz/corpus/) holds all of them (the files named qemu-*)
and what the fuzzer found since that reaches code they do not (see
fuzz/README.md). Each seed is the bodies' three header bytes
(two of settings, a zero chunk count: the stream pushed whole; see
tests/src/fuzz_bodies.rs) followed by a run of whole messages of a capture,
at most MAX_SEED bytes of them: libFuzzer works best on small inputs, so the
~200 KB `query-qmp-schema` replies are left out.
"""

import pathlib
import re
import sys

CAPTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "captures"
MAX_SEED = 4000


def messages(stream: bytes) -> list[bytes]:
    """The messages of a server stream, each with its CRLF line ending(s)."""
    if stream.startswith(b"{\r\n"):
        # pretty=on: a message ends with a line that is just "}".
        parts = re.split(rb"(?<=\r\n\}\r\n)", stream)
    else:
        parts = re.split(rb"(?<=\r\n)", stream)
    return [part for part in parts if part]


def runs(parts: list[bytes]) -> list[bytes]:
    """Consecutive messages grouped into runs of at most MAX_SEED bytes."""
    out, current = [], b""
    for part in parts:
        if len(part) > MAX_SEED:
            if current:
                out.append(current)
            current = b""
            continue
        if len(current) + len(part) > MAX_SEED:
            out.append(current)
            current = b""
        current += part
    if current:
        out.append(current)
    return out


def write(outdir: pathlib.Path, target: str, name: str, settings: tuple[int, int], body: bytes):
    directory = outdir / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(bytes([settings[0], settings[1], 0]) + body)


def main():
    outdir = pathlib.Path(sys.argv[1])
    for s2c in sorted(CAPTURES.glob("*.s2c")):
        session = s2c.stem
        parts = messages(s2c.read_bytes())
        pretty = parts[0].startswith(b"{\r\n")
        for n, run in enumerate(runs(parts)):
            # framer: the default limit, and a 200-byte one.
            write(outdir, "framer", f"{session}-{n}", (0, 0), run)
            write(outdir, "framer", f"{session}-{n}-small", (1, 200), run)
        # client_bytes: the same greeting, then the rest; OOB wanted, EOF at
        # the end, a window of 8, 15 commands issued (ids 2 to 16).
        greeting = 2 if pretty else (0 if "7.2" in session else 1)
        for n, run in enumerate(runs(parts[1:])):
            write(outdir, "client_bytes", f"{session}-{n}", (greeting | 0x3C, 0x0F), run)
    for c2s in sorted(CAPTURES.glob("*.c2s")):
        # server_bytes: offering OOB, with EOF; compact, and pretty with events.
        stream = c2s.read_bytes()
        write(outdir, "server_bytes", c2s.stem, (0x05, 0), stream)
        write(outdir, "server_bytes", f"{c2s.stem}-pretty", (0x47, 0), stream)


if __name__ == "__main__":
    main()
