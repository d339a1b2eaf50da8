#!/usr/bin/env python3
"""Independent latency spot-check for chatgw (or the baseline relay).

A small asyncio client built on the `websockets` package, sharing no code
with `loadgen`: it mints its own HS256 tokens, opens P sender/recipient
pairs, sends at a fixed total rate for a while, and reports send -> deliver
latency percentiles measured with its own clock. Its numbers are meant to be
compared with loadgen's at the same offered rate; agreement (within the
Python client's own overhead) says loadgen's latencies are trustworthy.

Usage: scripts/spotcheck.py --url 127.0.0.1:8080 --secret S [--pairs 50] [--rate 500] [--duration 10]
Requires: pip install websockets
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

try:
    import websockets
except ImportError:
    sys.exit("spotcheck.py needs the `websockets` package: pip install websockets")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret: str, user: int, ttl: int = 3600) -> str:
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    claims = b64url(json.dumps({"sub": str(user), "exp": int(time.time()) + ttl}).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(sig)}"


async def open_device(url: str, secret: str, user: int):
    ws = await websockets.connect(f"ws://{url}/ws?token={mint(secret, user)}", max_size=None, compression=None)
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    await ws.send(json.dumps({"type": "sync", "after": "0"}))
    while json.loads(await ws.recv())["type"] != "synced":
        pass
    return ws


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="127.0.0.1:8080")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second in total")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--first-user", type=int, default=5_000_000)
    args = ap.parse_args()

    senders = [await open_device(args.url, args.secret, args.first_user + 2 * i) for i in range(args.pairs)]
    recipients = [await open_device(args.url, args.secret, args.first_user + 2 * i + 1) for i in range(args.pairs)]
    intended = {}
    latencies = []
    expected = int(args.rate * args.duration)

    async def receive(ws):
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message":
                t0 = intended.pop(frame["cid"], None)
                if t0 is not None:
                    latencies.append((time.perf_counter() - t0) * 1000.0)

    async def drain(ws):
        async for _ in ws:
            pass

    readers = [asyncio.create_task(receive(ws)) for ws in recipients] + [asyncio.create_task(drain(ws)) for ws in senders]
    start = time.perf_counter()
    interval = 1.0 / args.rate
    for n in range(expected):
        due = start + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        i = n % args.pairs
        cid = f"spot-{start:.0f}-{n}"
        # Latency counts from the intended send time (open loop).
        intended[cid] = due
        to = args.first_user + 2 * i + 1
        await senders[i].send(json.dumps({"type": "send", "id": cid, "to": str(to), "body": "x" * 100}))
    deadline = time.perf_counter() + 5.0
    while intended and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for t in readers:
        t.cancel()
    for ws in senders + recipients:
        await ws.close()
    latencies.sort()
    print(f"spotcheck: {len(latencies)}/{expected} delivered at {args.rate:.0f} msg/s over {args.pairs} pairs")
    for p in (50, 90, 99, 99.9):
        print(f"  p{p:<5} send -> deliver {percentile(latencies, p):8.3f} ms")
    print(f"  max    send -> deliver {latencies[-1] if latencies else float('nan'):8.3f} ms")
    if intended:
        print(f"  NOT DELIVERED: {len(intended)}")
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
