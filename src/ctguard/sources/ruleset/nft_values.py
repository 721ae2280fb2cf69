"""Values of ``nft -j`` JSON: typed access (``json_object``, ``json_str``, ``json_int``) and
rendering back as nft syntax, for evidence only; the rendering is never parsed back.

>>> render_statement({"match": {"op": "!=", "left": {"payload": {"protocol": "tcp",
...     "field": "dport"}}, "right": {"set": [22, {"range": [8000, 8100]}]}}})
'tcp dport != { 22, 8000-8100 }'
"""

from __future__ import annotations

import json

from ctguard.sources.ruleset.model import NAT_VERDICTS

MAX_DEPTH = 12  # JSON nesting we render; deeper is shown as "..."
_BINARY_OPS = frozenset({"&", "|", "^", "<<", ">>"})

JsonObject = dict[str, object]


def json_object(obj: JsonObject, kind: str) -> JsonObject | None:
    value = obj.get(kind)
    return value if isinstance(value, dict) else None


def json_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def json_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def nat_to(body: object) -> str | None:
    """``{"addr": "10.0.0.5", "port": 80}`` as ``10.0.0.5:80``."""
    if not isinstance(body, dict):
        return None
    addr, port = body.get("addr"), body.get("port")
    shown_addr = "" if addr is None else render(addr)
    shown_port = "" if port is None else f":{render(port)}"
    if ":" in shown_addr and shown_port:
        shown_addr = f"[{shown_addr}]"  # an IPv6 address before a port, as nft writes it
    return (shown_addr + shown_port) or None


def render_statement(statement: JsonObject) -> str:
    ((kind, body),) = statement.items()
    if kind == "match" and isinstance(body, dict):
        return render_match(body)
    if kind in ("jump", "goto") and isinstance(body, dict):
        return f"{kind} {render(body.get('target'))}"
    if body is None or kind == "counter":
        return kind
    if kind in NAT_VERDICTS:
        to = nat_to(body)
        return f"{kind} to {to}" if to else kind
    if kind == "vmap" and isinstance(body, dict):
        return f"{render(body.get('key'))} vmap {render(body.get('data'))}"
    if kind == "xt" and isinstance(body, dict):
        return f"xt {render(body.get('type'))} {render(body.get('name'))}"
    if kind == "mangle" and isinstance(body, dict):
        return f"{render(body.get('key'))} set {render(body.get('value'))}"
    if kind == "ct helper" and isinstance(body, str):
        return f'ct helper set "{body}"'
    if kind == "reject" and isinstance(body, dict):
        return " ".join(["reject with", *(render(v) for v in body.values())])
    return f"{kind} {render(body)}"


def render_match(body: JsonObject) -> str:
    """A match as ``nft list ruleset`` prints it. A bitmask test keeps its ``==`` and shows
    its numbers in hex (``meta mark & 0x4000 == 0x4000``): without the operator the two
    numbers read as one list, and a mark is a bit pattern, not a count.

    >>> mark = {"&": [{"meta": {"key": "mark"}}, 16384]}
    >>> render_match({"op": "==", "left": mark, "right": 16384})
    'meta mark & 0x4000 == 0x4000'
    """
    op = json_str(body.get("op")) or "=="
    shown_op = "" if op in ("==", "in") else f"{op} "
    left, right = body.get("left"), body.get("right")
    bitwise = isinstance(left, dict) and len(left) == 1 and next(iter(left)) in ("&", "|", "^")
    if bitwise and isinstance(left, dict):
        ((kind, operands),) = left.items()
        if isinstance(operands, list) and len(operands) == 2:
            shown = f"{render(operands[0])} {kind} {_hex(operands[1])}"
            return f"{shown} {'==' if op in ('==', 'in') else op} {_hex(right)}"
    shown_right = render(right)
    meta = json_object(left, "meta") if isinstance(left, dict) else None
    if meta is not None and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
        shown_right = f'"{right}"'  # as nft prints interface names
    return f"{render(left)} {shown_op}{shown_right}"


def _hex(value: object) -> str:
    number = json_int(value)
    return f"{number:#x}" if number is not None and number >= 0 else render(value)


def render(value: object, depth: int = 0) -> str:
    if depth > MAX_DEPTH:
        return "..."
    if isinstance(value, str):
        return f'"{value}"' if " " in value else value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(render(v, depth + 1) for v in value)
    if not isinstance(value, dict):
        return "?"
    return _render_object(value, depth)


def _render_object(value: JsonObject, depth: int) -> str:
    if len(value) != 1:
        return " ".join(f"{k} {render(v, depth + 1)}" for k, v in value.items())
    ((kind, body),) = value.items()
    inner = body if isinstance(body, dict) else {}
    if kind in _BINARY_OPS and isinstance(body, list) and len(body) == 2:
        return f"{render(body[0], depth + 1)} {kind} {render(body[1], depth + 1)}"
    if kind == "payload" and "protocol" in inner:
        return f"{render(inner.get('protocol'), depth + 1)} {render(inner.get('field'))}"
    if kind in ("meta", "ct") and "key" in inner:
        prefix = "" if inner.get("key") in ("iifname", "oifname", "iif", "oif") else f"{kind} "
        return prefix + render(inner.get("key"), depth + 1)
    if kind == "set" and isinstance(body, list):
        return "{ " + ", ".join(_render_element(e, depth + 1) for e in body) + " }"
    if kind == "range" and isinstance(body, list) and len(body) == 2:
        return f"{render(body[0], depth + 1)}-{render(body[1], depth + 1)}"
    if kind == "prefix" and "addr" in inner:
        return f"{render(inner.get('addr'), depth + 1)}/{render(inner.get('len'))}"
    if body is None:
        return kind
    return f"{kind} {render(body, depth + 1)}"


def _render_element(element: object, depth: int) -> str:
    if isinstance(element, list) and len(element) == 2:  # a map entry: key : value
        return f"{render(element[0], depth + 1)} : {render(element[1], depth + 1)}"
    return render(element, depth)
