"""One HTTP request to the demo's server, printed as it went and as it came back.

    python request.py GET URL            python request.py POST URL 'JSON'
    python request.py GET URL --auth     (Authorization: Bearer $QLLM_TOKEN)
    python request.py GET URL --head 3   (only the first lines of the answer: a page)

The standard library only, so that the demo needs nothing but Python; ``curl -s URL``
prints the same bodies.
"""

from __future__ import annotations

import argparse
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=["GET", "POST"])
    parser.add_argument("url")
    parser.add_argument("body", nargs="?")
    parser.add_argument("--auth", action="store_true", help="send $QLLM_TOKEN")
    parser.add_argument("--head", type=int, help="print only this many lines of the answer")
    args = parser.parse_args()
    request = urllib.request.Request(args.url, method=args.method)  # noqa: S310 - the demo's own server
    if args.body is not None:
        request.data = args.body.encode()
        request.add_header("Content-Type", "application/json")
    if args.auth:
        request.add_header("Authorization", f"Bearer {os.environ['QLLM_TOKEN']}")
    parts = urlsplit(args.url)
    shown = parts.path + (f"?{parts.query}" if parts.query else "")
    print(
        f"> {args.method} {shown}" + (" (Authorization: Bearer $QLLM_TOKEN)" if args.auth else "")
    )
    if args.body is not None:
        print(f"> {args.body}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    lines = text.splitlines()
    if args.head is not None and len(lines) > args.head:
        lines = [*lines[: args.head], f"... ({len(text):,} characters in all)"]
    print(f"< {status}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
