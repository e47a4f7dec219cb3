"""A minimal RFC 8785 writer, independent of the hub's, to check canonical bytes against."""


def independent_jcs(value) -> str:
    """RFC 8785 for the values a contribution can hold (objects, arrays, strings, small integers,
    null): keys sorted by UTF-16 code units, no whitespace, ECMAScript string escaping."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return (
            "{" + ",".join(f"{independent_jcs(k)}:{independent_jcs(value[k])}" for k in keys) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(independent_jcs(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        assert abs(value) < 2**53
        return str(value)
    if isinstance(value, str):
        short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
        short["\t"] = "\\t"
        out = []
        for char in value:
            assert not 0xD800 <= ord(char) <= 0xDFFF, "lone surrogates cannot be canonicalised"
            if char in short:
                out.append(short[char])
            elif ord(char) < 0x20:
                out.append(f"\\u{ord(char):04x}")
            else:
                out.append(char)
        return '"' + "".join(out) + '"'
    raise TypeError(f"a contribution holds no {type(value).__name__}")
