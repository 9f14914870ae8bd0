"""A local fake of the few Stripe calls ClawTrace makes, over real HTTP on 127.0.0.1.

stripe-python is pointed at it through `STRIPE_API_BASE`, so the gateway's real requests (form
encoded, Bearer key) are answered here and nothing reaches the internet. It implements exactly
what `billing/stripe_gateway.py` calls:

- `POST /v1/checkout/sessions` (create), `GET /v1/checkout/sessions` (list, newest first, with
  `limit`/`starting_after` pagination, `status` and `created[gte]` filters and the
  `payment_intent.latest_charge` expansion), `GET /v1/checkout/sessions/<id>` (retrieve);
  anything else under `/v1/` is a 404 in Stripe's error shape.
- A hosted Checkout page, `GET /pay/<session id>`, whose Pay button (`POST /pay/<id>`) marks the
  session paid, posts a properly signed `checkout.session.completed` to the site's webhook and
  sends the browser on to the session's `success_url`; `GET /receipts/<charge id>` is the
  receipt that a payment's link opens.

Everything it received is in `requests` (method, path, parsed params), so tests can assert on
what the gateway sent.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY_PREFIX = "sk_test_"
PRICES = {"price_test_pro": 7900, "price_test_team": 19900}


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature` scheme, written out: `t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<payload>" keyed with the endpoint secret>`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_build(event_type: str, data_object: dict[str, Any], *, event_id: str | None = None):
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": data_object},
    }


def form_decode(body: str) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[plan]=team&line_items[0][price]=p`) as nested data."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists_made(root)


def _lists_made(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {key: _lists_made(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


@dataclass
class ReceivedRequest:
    method: str
    path: str
    params: dict[str, Any]
    authorization: str


@dataclass
class FakeStripe:
    """The fake's state; `url` once started. `webhook_url` and `webhook_secret` say where the
    Pay button delivers the signed event."""

    webhook_url: str = ""
    webhook_secret: str = ""
    url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[ReceivedRequest] = field(default_factory=list)
    webhook_responses: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.sessions.clear()
            self.charges.clear()
            self.requests.clear()
            self.webhook_responses.clear()

    # --- What tests do to it ----------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params.get("line_items") or [{}]
        price = items[0].get("price", "")
        quantity = int(items[0].get("quantity", 1))
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "customer_email": params.get("customer_email"),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "amount_total": PRICES.get(price, 0) * quantity,
            "currency": "usd",
            "payment_intent": None,
            "livemode": False,
            "created": int(time.time()),
            "url": f"{self.url}/pay/{session_id}",
        }
        with self.lock:
            self.sessions[session_id] = session
        return session

    def session_pay(self, session_id: str) -> dict[str, Any]:
        """The customer paid: the session completes, with a payment intent and its charge."""
        with self.lock:
            session = self.sessions[session_id]
            payment_intent_id = f"pi_test_{secrets.token_hex(12)}"
            charge_id = f"ch_test_{secrets.token_hex(12)}"
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "payment_intent": payment_intent_id,
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "refunded": False,
                "receipt_url": f"{self.url}/receipts/{charge_id}",
            }
            session.update(
                status="complete",
                payment_status="paid",
                payment_intent=payment_intent_id,
                _charge_id=charge_id,
            )
            return self._public(session)

    def paid_session_add(self, *, organization_id: int, plan: str, **fields) -> dict[str, Any]:
        """A session paid on Stripe's side whose webhook never reached the site."""
        session = self.session_create(
            {
                "mode": "payment",
                "line_items": [{"price": f"price_test_{plan}", "quantity": "1"}],
                "client_reference_id": str(organization_id),
                "metadata": {"plan": plan},
                "success_url": "http://testserver/success",
                "cancel_url": "http://testserver/cancel",
            }
        )
        session.update(fields)
        return self.session_pay(session["id"])

    def charge_refund(self, session_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """Refund the session's charge (all of it by default); the charge as the
        `charge.refunded` event carries it."""
        with self.lock:
            charge = self.charges[self.sessions[session_id]["_charge_id"]]
            charge["amount_refunded"] = charge["amount"] if amount is None else amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return dict(charge)

    def charge_of(self, session_id: str) -> dict[str, Any]:
        return dict(self.charges[self.sessions[session_id]["_charge_id"]])

    def webhook_send(self, event: dict[str, Any], *, timestamp: int | None = None):
        """Deliver an event to the site as Stripe does: signed, JSON, POST. (status, body)"""
        payload = json.dumps(event)
        request = urllib.request.Request(
            self.webhook_url,
            data=payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature_header(payload, self.webhook_secret, timestamp),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = (response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            answer = (error.code, error.read().decode())
        self.webhook_responses.append(answer)
        return answer

    # --- What the API answers ---------------------------------------------------------------

    def _public(self, session: dict[str, Any], expand: list[str] = ()) -> dict[str, Any]:
        public = {key: value for key, value in session.items() if not key.startswith("_")}
        charge_id = session.get("_charge_id")
        if "payment_intent" in expand and public["payment_intent"]:
            public["payment_intent"] = {
                "id": public["payment_intent"],
                "object": "payment_intent",
                "latest_charge": charge_id,
            }
        if "payment_intent.latest_charge" in expand and public["payment_intent"]:
            public["payment_intent"] = {
                "id": session["payment_intent"],
                "object": "payment_intent",
                "latest_charge": dict(self.charges[charge_id]),
            }
        return public

    def session_list(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = min(int(params.get("limit", 10)), 100)
        expand = [path.removeprefix("data.") for path in params.get("expand", [])]
        with self.lock:
            sessions = sorted(
                self.sessions.values(), key=lambda s: (s["created"], s["id"]), reverse=True
            )
            if params.get("status"):
                sessions = [s for s in sessions if s["status"] == params["status"]]
            created = params.get("created") or {}
            if isinstance(created, dict) and created.get("gte"):
                sessions = [s for s in sessions if s["created"] >= int(created["gte"])]
            after = params.get("starting_after")
            if after:
                ids = [s["id"] for s in sessions]
                sessions = sessions[ids.index(after) + 1 :] if after in ids else []
            page = sessions[:limit]
            return {
                "object": "list",
                "url": "/v1/checkout/sessions",
                "has_more": len(sessions) > limit,
                "data": [self._public(s, expand) for s in page],
            }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: pytest shows failures, not access logs
        pass

    # --- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, body: str, content_type="application/json", headers=None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body), headers={"Request-Id": "req_fake"})

    def _stripe_error(self, status: int, message: str, error_type="invalid_request_error"):
        self._json(status, {"error": {"type": error_type, "message": message}})

    def _record(self, params: dict[str, Any]) -> bool:
        path = urlsplit(self.path).path
        authorization = self.headers.get("Authorization", "")
        self.fake.requests.append(ReceivedRequest(self.command, path, params, authorization))
        if not authorization.startswith(f"Bearer {API_KEY_PREFIX}"):
            self._stripe_error(401, "Invalid API Key provided.")
            return False
        return True

    def _not_found(self) -> None:
        self._stripe_error(
            404, f"Unrecognized request URL ({self.command}: {urlsplit(self.path).path})."
        )

    # --- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/v1/"):
            params = form_decode(parts.query)
            if path == "/v1/checkout/sessions":
                if self._record(params):
                    self._json(200, self.fake.session_list(params))
                return
            match = re.fullmatch(r"/v1/checkout/sessions/([\w]+)", path)
            if match:
                if not self._record(params):
                    return
                session = self.fake.sessions.get(match.group(1))
                if session is None:
                    self._stripe_error(404, f"No such checkout.session: '{match.group(1)}'")
                    return
                self._json(200, self.fake._public(session, params.get("expand", [])))
                return
            self._record(params)
            self._not_found()
            return
        match = re.fullmatch(r"/pay/([\w]+)", path)
        if match and match.group(1) in self.fake.sessions:
            self._checkout_page(self.fake.sessions[match.group(1)])
            return
        match = re.fullmatch(r"/receipts/([\w]+)", path)
        if match and match.group(1) in self.fake.charges:
            charge = self.fake.charges[match.group(1)]
            amount = f"{charge['amount'] / 100:.2f} {charge['currency'].upper()}"
            self._send(
                200,
                f"<!doctype html><title>Receipt</title><h1>Receipt</h1><p>{amount}</p>",
                "text/html",
            )
            return
        self._send(404, "not found", "text/plain")

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if parts.path.startswith("/v1/"):
            params = form_decode(body)
            if not self._record(params):
                return
            if parts.path == "/v1/checkout/sessions":
                if params.get("mode") != "payment":
                    self._stripe_error(400, "This fake only makes sessions in payment mode.")
                    return
                self._json(200, self.fake.session_create(params))
                return
            self._not_found()
            return
        match = re.fullmatch(r"/pay/([\w]+)", parts.path)
        if match and match.group(1) in self.fake.sessions:
            session = self.fake.session_pay(match.group(1))
            self.fake.webhook_send(event_build("checkout.session.completed", session))
            success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
            self._send(303, "", "text/plain", headers={"Location": success})
            return
        self._send(404, "not found", "text/plain")

    def _checkout_page(self, session: dict[str, Any]) -> None:
        amount = f"${session['amount_total'] / 100:.2f}"
        plan = html.escape(str(session["metadata"].get("plan", "")))
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake Stripe Checkout</title></head>
<body>
  <h1>Pay ClawTrace</h1>
  <p id="summary">{plan.title()} plan: {amount}</p>
  <form method="post" action="/pay/{session["id"]}">
    <button type="submit">Pay {amount}</button>
  </form>
  <p><a href="{html.escape(session["cancel_url"] or "")}">Cancel</a></p>
</body></html>"""
        self._send(200, page, "text/html; charset=utf-8")


class FakeStripeServer:
    """The fake on a free port of 127.0.0.1, served from a daemon thread."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.fake.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FakeStripe:
        self.thread.start()
        return self.fake

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
