"""Small helpers for the admin HTTP tests (test_ops_*.py): plain urllib, so what is tested is
the server's own HTTP, and a flat view of a Prometheus scrape parsed by prometheus_client."""

import json
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def http(method, url, body=None, timeout=10.0, raw=None):
    """(status, headers, parsed JSON or text). `body` is sent as JSON, `raw` as bytes."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, headers, payload = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, payload = e.code, dict(e.headers), e.read()
    ctype = headers.get("content-type", headers.get("Content-Type", ""))
    if ctype.startswith("application/json"):
        return status, headers, json.loads(payload) if payload else None
    return status, headers, payload.decode()


def scrape(admin_url):
    """{(sample name, frozenset(labels)): value} of one /metrics scrape, through the parser."""
    status, headers, text = http("GET", f"{admin_url}/metrics")
    assert status == 200, text
    ctype = headers.get("content-type", headers.get("Content-Type", ""))
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= set(l))


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = cond()
        if r:
            return r
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
