#!/usr/bin/env python3
"""Writes one fuzz seed in the framing of tests/testing/fuzz_input.h.

usage: make_fuzz_seed.py OUT FIELD... where each FIELD is @path (a file's
bytes), hex:ABCD (literal bytes) or text:... (UTF-8). Every field but the last
gets a big-endian u16 length prefix.
"""
import sys


def field(spec: str) -> bytes:
    if spec.startswith("@"):
        with open(spec[1:], "rb") as f:
            return f.read()
    if spec.startswith("hex:"):
        return bytes.fromhex(spec[4:])
    if spec.startswith("text:"):
        return spec[5:].encode()
    raise SystemExit(f"bad field {spec!r}")


def main() -> None:
    out, specs = sys.argv[1], sys.argv[2:]
    data = b""
    for i, spec in enumerate(specs):
        value = field(spec)
        if i + 1 < len(specs):
            if len(value) > 0xFFFF:
                raise SystemExit(f"field {spec!r} longer than 65535 bytes")
            data += len(value).to_bytes(2, "big")
        data += value
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
