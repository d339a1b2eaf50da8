#!/usr/bin/env python3
"""Write the seed corpora in fuzz/corpus/ (deterministic; run from anywhere).

Each file is one fuzz input, named for what it holds. Layouts (see the
harnesses in gateway/src/fuzzing/ and protocol/src/fuzzing.rs):
  http_upgrade: [n] [n cut lengths] [bytes from the start of the connection]
  ws_frames:    [setup: max-frame choice in bits 0-1] [n] [n cut lengths] [client bytes after the upgrade]
  client_frame: the text of one text message
  link_frames:  node-link bytes from a peer (docs/CLUSTER.md), several frames
  proxy_header: the bytes a balancer sends first (a PROXY header, then more)
A cut length byte b means a read of 1 + 4*b bytes. Seeds from docs/PROTOCOL.md
are the client frames of its examples (lines with `-> {`).
Files other than seeds (inputs that once failed) are added by hand and never
removed by this script.
"""
import json, os, re, struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cuts(*lengths):
    """The split prefix: reads of the given byte counts (each 1 + 4*b)."""
    bs = []
    for n in lengths:
        assert n >= 1 and (n - 1) % 4 == 0 and (n - 1) // 4 < 256, n
        bs.append((n - 1) // 4)
    return bytes([len(bs)]) + bytes(bs)


# ------------------------------------------------------------- client frames
def frame(op, payload, fin=True, mask=b"\x11\x22\x33\x44", rsv=0, length_form=None, masked=True):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    mbit = 0x80 if masked else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + mask + body


TEXT, BIN, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def ws(name, stream, setup=0, split=b"\x00"):
    write("ws_frames", name, bytes([setup]) + split + stream)


ws("text-hello", frame(TEXT, b"hello"))
ws("text-hello-byte-reads", frame(TEXT, b"hello"), split=cuts(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
ws("binary", frame(BIN, bytes(range(40)), mask=b"\x00\x00\x00\x00"))
ws("text-empty", frame(TEXT, b""))
ws("utf8-multibyte", frame(TEXT, "caf\u00e9 \u2615 \U0001F600".encode()))
ws("utf8-invalid", frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"))
ws("fragmented-text-3", frame(TEXT, b"frag", fin=False) + frame(CONT, b"ment", fin=False) + frame(CONT, b"ed"),
   split=cuts(5, 9, 13))
ws("fragmented-utf8-split-in-char", frame(TEXT, "\u2615".encode()[:1], fin=False) + frame(CONT, "\u2615".encode()[1:]))
ws("fragmented-with-ping-inside", frame(TEXT, b"a", fin=False) + frame(PING, b"p") + frame(CONT, b"b"),
   split=cuts(5, 9))
ws("fragmented-empty-fragments", frame(BIN, b"", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b""))
ws("ping-payload", frame(PING, b"are you there"))
ws("ping-125", frame(PING, b"x" * 125))
ws("ping-126-too-long", frame(PING, b"x" * 126))
ws("ping-fragmented", frame(PING, b"", fin=False))
ws("pong-unsolicited", frame(PONG, b"hi") + frame(TEXT, b"after"))
ws("close-normal-reason", frame(CLOSE, struct.pack(">H", 1000) + b"bye") + frame(TEXT, b"ignored"))
ws("close-empty", frame(CLOSE, b""))
ws("close-one-byte", frame(CLOSE, b"\x03"))
ws("close-code-1005", frame(CLOSE, struct.pack(">H", 1005)))
ws("close-code-4999", frame(CLOSE, struct.pack(">H", 4999)))
ws("close-reason-invalid-utf8", frame(CLOSE, struct.pack(">H", 1000) + b"\xff\xfe"))
ws("len16-200", frame(BIN, b"z" * 200), split=cuts(5, 1))
ws("len16-200-over-126-limit", frame(BIN, b"z" * 200), setup=1)
ws("len64-form-small", frame(TEXT, b"non-minimal", length_form=64))
ws("len16-form-small", frame(TEXT, b"short", length_form=16))
ws("len64-msb-set", bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + b"\x01\x02\x03\x04")
ws("len64-huge", bytes([0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0]) + b"\x01\x02\x03\x04")
ws("over-max-fragmented", frame(BIN, b"q" * 100, fin=False) + frame(CONT, b"q" * 100), setup=1)
ws("unmasked", frame(TEXT, b"no mask", masked=False))
ws("rsv1", frame(TEXT, b"deflate?", rsv=0x40))
ws("opcode-3", frame(3, b""))
ws("opcode-b-control", frame(0xB, b""))
ws("continuation-first", frame(CONT, b"orphan"))
ws("data-inside-fragmented", frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"))
ws("many-small", b"".join(frame(TEXT if i % 2 else BIN, bytes([65 + i]) * i) for i in range(12)),
   split=cuts(*[9, 5, 13, 1, 17, 21, 33, 3 * 4 + 1]))
ws("header-split-everywhere", frame(BIN, b"y" * 300), split=cuts(1, 1, 1, 1, 1, 1, 1, 1, 1))

# ------------------------------------------------------------- HTTP upgrades
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def req(path=b"/echo", method=b"GET", headers=None, version=b"HTTP/1.1"):
    if headers is None:
        headers = [(b"Host", b"localhost"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                   (b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"13")]
    return method + b" " + path + b" " + version + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n"


def http(name, stream, split=b"\x00"):
    write("http_upgrade", name, split + stream)


UP = req()
http("echo-upgrade", UP)
http("echo-upgrade-in-reads", UP, split=cuts(1, 5, 17, 33, 1))
http("echo-upgrade-then-frame", UP + frame(TEXT, b"hi"), split=cuts(len(UP) // 4 * 4 + 1))
http("echo-upgrade-then-close", UP + frame(CLOSE, struct.pack(">H", 1001)))
http("ws-query-token-bad", req(b"/ws?token=eyJhbGciOiJIUzI1NiJ9.e30.sig"))
http("ws-bearer-bad", req(b"/ws", headers=[(b"Authorization", b"Bearer abc.def.ghi"), (b"Upgrade", b"websocket"),
                                          (b"Connection", b"keep-alive, Upgrade"), (b"Sec-WebSocket-Key", KEY),
                                          (b"Sec-WebSocket-Version", b"13")]))
http("ws-no-token", req(b"/ws"))
http("healthz", req(b"/healthz", headers=[(b"Host", b"x")]))
http("metrics", req(b"/metrics", headers=[]))
http("post", req(b"/echo", method=b"POST"))
http("not-found", req(b"/nope"))
http("version-8", req(headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                               (b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"8")]))
http("no-key", req(headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Version", b"13")]))
http("key-65-bytes", req(headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                                  (b"Sec-WebSocket-Key", b"k" * 65), (b"Sec-WebSocket-Version", b"13")]))
http("no-upgrade-header", req(headers=[(b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", KEY),
                                       (b"Sec-WebSocket-Version", b"13")]))
http("lowercase-headers", req(headers=[(b"upgrade", b"WebSocket"), (b"connection", b"upgrade"),
                                       (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")]))
http("too-many-headers", req(headers=[(b"X-%d" % i, b"y") for i in range(40)]))
http("http10", req(version=b"HTTP/1.0"))
http("partial-head", UP[:-2])
http("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)))
http("bare-lf", UP.replace(b"\r\n", b"\n"))
http("head-over-8k", req(headers=[(b"X-Pad", b"p" * 8300)]), split=cuts(*[1021] * 9))
http("space-in-path", b"GET /ec ho HTTP/1.1\r\n\r\n")
http("obs-fold", b"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\n  folded\r\n\r\n")

# ------------------------------------------------------------- protocol frames
doc = open(os.path.join(ROOT, "..", "docs", "PROTOCOL.md"), encoding="utf-8").read()
seen = set()
for line in doc.splitlines():
    m = re.search(r"-> (\{.*\})\s*(\(.*\))?$", line)
    if not m:
        continue
    text = m.group(1)
    try:
        json.loads(text)
    except ValueError:
        continue
    ty = json.loads(text).get("type", "x")
    n = sum(1 for s in seen if json.loads(s).get("type") == ty)
    if text in seen or n >= 3:  # a few of each type is enough
        continue
    seen.add(text)
    write("client_frame", "doc-%s-%d" % (ty, n + 1), text.encode())

edge = {
    "subscribe-presence-both": '{"type":"subscribe_presence","peer":"2","group":"3"}',
    "unsubscribe-presence-overflow": '{"type":"unsubscribe_presence","group":"18446744073709551616"}',
    "set-presence-string": '{"type":"set_presence","visible":"false"}',
    "set-direct-from-escaped": '{"type":"set_direct_from","from":"cont\\u0061cts"}',
    "set-direct-from-null": '{"type":"set_direct_from","from":null}',
    "direct-from-extra": '{"type":"direct_from","from":"contacts"}',
    "register-push-escaped": '{"type":"register_push","provider":"ap\\u006es","token":"a\\/b"}',
    "register-push-space": '{"type":"register_push","provider":"fcm","token":"a b"}',
    "register-push-4097": '{"type":"register_push","provider":"webhook","token":"' + "t" * 4097 + '"}',
    "unregister-push-extra": '{"type":"unregister_push","provider":"apns"}',
    "upload-keys-padded": '{"type":"upload_keys","signing_key":"' + "A" * 43 + '=","identity_key":"' + "A" * 43
    + '","identity_signature":"' + "A" * 86 + '","fallback_key":{"id":"f","key":"' + "A" * 43 + '","signature":"'
    + "A" * 86 + '"}}',
    "upload-keys-otk-not-object": '{"type":"upload_keys","signing_key":"' + "A" * 43 + '","identity_key":"'
    + "A" * 43 + '","identity_signature":"' + "A" * 86 + '","fallback_key":{"id":"f","key":"' + "A" * 43
    + '","signature":"' + "A" * 86 + '"},"one_time_keys":[7,{"id":"a|b"}]}',
    "fetch-keys-device-bad": '{"type":"fetch_keys","user":"1","device":"a b"}',
    "key-count-extra": '{"type":"key_count","user":"1"}',
    "upload-media-size-float": '{"type":"upload_media","id":"u","to":"2","kind":"image","size":1.5,"content_type":"a/b"}',
    "upload-media-content-type-crlf": '{"type":"upload_media","id":"u","group":"9","kind":"video","size":9,"content_type":"a/b\\r\\nX: y"}',
    "complete-media-tags-1001": '{"type":"complete_media","id":"c","media":"g9.AAAAAAAAAAAAAAAAAAAAAA","upload":"1.x","tags":[' + ",".join(['"t"'] * 1001) + ']}',
    "download-media-path": '{"type":"download_media","id":"d","media":"../../etc/passwd"}',
    "typing-state-escaped": '{"type":"typing","peer":"2","state":"typ\\u0069ng"}',
    "typing-state-unknown": '{"type":"typing","group":"5","state":"composing"}',
    "empty": "",
    "array": '["send"]',
    "not-json": "{",
    "type-missing": '{"kind":"text"}',
    "type-unknown": '{"type":"nope"}',
    "type-escaped": '{"type":"s\\u0065nd","id":"c","to":"2","body":"x"}',
    "send-escaped-id": '{"type":"send","id":"c\\n1","to":"2","body":"x"}',
    "send-id-65": '{"type":"send","id":"%s","to":"2","body":"x"}' % ("i" * 65),
    "send-body-number": '{"type":"send","id":"c","to":"2","body":5}',
    "send-body-escapes": '{"type":"send","id":"c","group":"9","kind":"sticker","body":"\\"\\u2615\\ud83d\\ude00\\\\"}',
    "send-to-and-group": '{"type":"send","id":"c","to":"2","group":"9","body":"x"}',
    "send-kind-system": '{"type":"send","id":"c","to":"2","kind":"system","body":"x"}',
    "send-to-number": '{"type":"send","id":"c","to":2,"body":"x"}',
    "duplicate-key": '{"type":"sync","type":"send"}',
    "sync-limit-0": '{"type":"sync","limit":0}',
    "sync-limit-float": '{"type":"sync","limit":1.5}',
    "sync-after-negative": '{"type":"sync","after":"-1"}',
    "sync-after-max": '{"type":"sync","after":"18446744073709551615"}',
    "sync-after-overflow": '{"type":"sync","after":"18446744073709551616"}',
    "delivered-empty-ids": '{"type":"delivered","peer":"1","ids":[]}',
    "create-group-blank-name": '{"type":"create_group","id":"g","name":" \\t","members":[]}',
    "create-group-escaped-name": '{"type":"create_group","id":"g","name":"T\\u00e9am \\"A\\"","members":["2"]}',
    "leave": '{"type":"leave","group":"9"}',
    "promote": '{"type":"promote","group":"9","members":["2","3"]}',
    "demote": '{"type":"demote","group":"9","members":["2","3"]}',
    "rename-group-escaped": '{"type":"rename_group","group":"9","name":"T\\u00e9am \\"B\\""}',
    "set-description-empty": '{"type":"set_description","group":"9","description":""}',
    "set-admins-only-string": '{"type":"set_admins_only","group":"9","admins_only":"true"}',
    "message-info": '{"type":"message_info","group":"9","msg":"5"}',
    "auth": '{"type":"auth","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}',
    "auth-escaped-token": '{"type":"auth","token":"a\\u0000\\"b"}',
    "auth-number-token": '{"type":"auth","token":17}',
    "logout-device-escaped": '{"type":"logout_device","device":"ph\\u006fne"}',
    "logout-device-33-bytes": '{"type":"logout_device","device":"' + "x" * 33 + '"}',
    "logout-device-non-ascii": '{"type":"logout_device","device":"t\u00e9l\u00e9phone"}',
    "devices-extra-field": '{"type":"devices","device":"phone"}',
    "conversations-first-page": '{"type":"conversations"}',
    "conversations-limit-zero": '{"type":"conversations","limit":0}',
    "conversations-before-number": '{"type":"conversations","before":7,"limit":100}',
    "conversations-before-null": '{"type":"conversations","before":null,"limit":"1"}',
    "delete-for-me": '{"type":"delete","group":"9","msg":"5","for":"me"}',
    "delete-for-number": '{"type":"delete","peer":"2","msg":"5","for":1}',
    "edit-body-escapes": '{"type":"edit","group":"9","msg":"5","body":"\\"\\u2615\\ud83d\\ude00"}',
    "edit-lone-surrogate": '{"type":"edit","peer":"2","msg":"5","body":"\\ude00"}',
    "set-admins-can-delete-string": '{"type":"set_admins_can_delete","group":"9","admins_can_delete":"true"}',
    "encrypted-olm": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,\\"d\\":\\"phone\\",'
    + '\\"k\\":[{\\"u\\":\\"2\\",\\"d\\":\\"desk\\",\\"t\\":0,\\"c\\":\\"AA\\/A\\"}]}"}',
    "encrypted-megolm-escaped": '{"type":"send","id":"e","group":"9","kind":"encrypted","body":"{\\u0022v\\":1,'
    + '\\"d\\":\\"phone\\",\\"k\\":[],\\"g\\":{\\"s\\":\\"c2Vzcw\\",\\"c\\":\\"+\\/8\\"}}"}',
    "encrypted-plain-body": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"hello"}',
    "encrypted-empty": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,\\"d\\":\\"p\\",'
    + '\\"k\\":[]}"}',
    "encrypted-padded": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,\\"d\\":\\"p\\",'
    + '\\"k\\":[],\\"g\\":{\\"s\\":\\"AAA\\",\\"c\\":\\"AQ==\\"}}"}',
    "encrypted-type-2": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,\\"d\\":\\"p\\",'
    + '\\"k\\":[{\\"u\\":\\"2\\",\\"d\\":\\"desk\\",\\"t\\":2,\\"c\\":\\"AAEC\\"}]}"}',
    "encrypted-unknown-field": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,'
    + '\\"d\\":\\"p\\",\\"k\\":[],\\"g\\":{\\"s\\":\\"AAA\\",\\"c\\":\\"AQ\\"},\\"x\\":0}"}',
    "encrypted-257-entries": '{"type":"send","id":"e","to":"2","kind":"encrypted","body":"{\\"v\\":1,'
    + '\\"d\\":\\"p\\",\\"k\\":['
    + ",".join(['{\\"u\\":\\"2\\",\\"d\\":\\"d\\",\\"t\\":1,\\"c\\":\\"AAAA\\"}'] * 257) + ']}"}',
    "deep-nesting": '{"type":"sync","x":' + "[" * 200 + "]" * 200 + "}",
    "whitespace-lead": ' \n\t{"type":"sync"}',
    "trailing-garbage": '{"type":"sync"} x',
}
for name, text in edge.items():
    write("client_frame", name, text.encode())


# Node-link frames: 4-byte big-endian length, kind byte, big-endian body.
def link(kind, body=b""):
    return struct.pack(">IB", 1 + len(body), kind) + body


def deliver(event, payload, targets):
    body = struct.pack(">QI", event, len(payload)) + payload + struct.pack(">I", len(targets))
    for user, pos in targets:
        body += struct.pack(">QQ", user, pos)
    return link(2, body)


# Version 2: the acceptor's Challenge, the dialler's Hello (nonce, MAC)
# and the Welcome; a version 1 Hello is refused as too short.
NONCE, MAC = bytes(range(32)), bytes(range(32, 64))
CHALLENGE = link(10, struct.pack(">HQB", 1, 1733300000001, 2) + NONCE)
HELLO = link(1, struct.pack(">HQB", 2, 1733300000000, 2) + NONCE + MAC)
WELCOME = link(11, MAC)
links = {
    "handshake": CHALLENGE + HELLO + WELCOME + link(6) + link(7),
    "hello-v1": link(1, struct.pack(">HQB", 2, 1733300000000, 1)),
    "hello-without-mac": link(1, struct.pack(">HQB", 2, 1733300000000, 2) + NONCE),
    "welcome-short": link(11, MAC[:31]),
    "challenge-trailing": CHALLENGE[:3] + bytes([CHALLENGE[3] + 1]) + CHALLENGE[4:] + b"\x00",
    "session": HELLO + link(6) + deliver(7, b'{"type":"message"}', [(1, 1), (2, 5)])
    + link(3, struct.pack(">IQQ", 2, 10, 11)) + link(4) + link(7) + link(5),
    "hello-only": HELLO,
    "deliver-no-targets": deliver(1, b"x", []),
    "deliver-truncated": deliver(9, b"payload", [(1, 2)])[:-3],
    "catch-up-huge-count": link(3, struct.pack(">I", 0xFFFFFFFF)),
    "payload-longer-than-frame": link(2, struct.pack(">QI", 1, 1 << 30) + b"abc"),
    "unknown-kind": link(99, b"zz"),
    "empty-frame": struct.pack(">I", 0),
    "oversized-length": struct.pack(">IB", 1 << 31, 2),
    "trailing-in-ping": link(6, b"\x00"),
    "length-only": b"\x00\x00",
    "ephemeral": HELLO + link(8, struct.pack(">I", 17) + b'{"type":"typing"}' + struct.pack(">IQQ", 2, 1, 2)),
    "ephemeral-huge-count": link(8, struct.pack(">I", 0) + struct.pack(">I", 0xFFFFFFFF)),
    "presence": HELLO + link(9, struct.pack(">IQBQQBQ", 2, 8, 1, 0, 9, 2, 1733300000000)),
    "presence-truncated-entry": link(9, struct.pack(">IQB", 1, 8, 1)),
}
for name, data in links.items():
    write("link_frames", name, data)


# ------------------------------------------------------------- proxy_header
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd, fam, body):
    return V2_SIG + bytes([ver_cmd, fam]) + struct.pack(">H", len(body)) + body


V4_BODY = bytes([192, 0, 2, 7, 10, 0, 0, 1]) + struct.pack(">HH", 51000, 443)
V6_BODY = bytes(15) + b"\x07" + bytes(15) + b"\x01" + struct.pack(">HH", 51000, 443)
proxy_headers = {
    "v1-tcp4": b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\nGET /ws HTTP/1.1\r\n",
    "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n",
    "v1-unknown": b"PROXY UNKNOWN\r\n",
    "v1-unknown-longest": b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n",
    "v1-overlong": b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n",
    "v1-bad-port": b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 443\r\n",
    "v1-truncated": b"PROXY TCP4 192.0.2.7 10.0",
    "v2-proxy-inet": v2(0x21, 0x11, V4_BODY) + b"GET / HTTP/1.1\r\n",
    "v2-proxy-inet6": v2(0x21, 0x21, V6_BODY),
    "v2-local": v2(0x20, 0x00, b""),
    "v2-unspec": v2(0x21, 0x00, b""),
    "v2-unix": v2(0x21, 0x31, bytes(216)),
    "v2-tlvs": v2(0x21, 0x11, V4_BODY + b"\x04\x00\x03abc\x05\x00\x00"),
    "v2-tlv-past-end": v2(0x21, 0x11, V4_BODY + b"\x04\x00\x09ab"),
    "v2-short-addresses": v2(0x21, 0x21, V4_BODY),
    "v2-bad-version": v2(0x11, 0x11, V4_BODY),
    "v2-bad-command": v2(0x22, 0x11, V4_BODY),
    "v2-bad-family": v2(0x21, 0x41, V4_BODY),
    "v2-length-too-long": V2_SIG + b"\x21\x11\xff\xff",
    "v2-truncated": v2(0x21, 0x11, V4_BODY)[:20],
    "no-signature": b"GET /ws HTTP/1.1\r\n\r\n",
}
for name, data in proxy_headers.items():
    write("proxy_header", name, data)
