"""A payment gateway: an HTTP service on 127.0.0.1, and the ChargeCard performer that calls it.

``python -m checkout.gateway`` serves ``POST /charges`` ``{"card_token", "amount"}``: 201 with a
charge id, or 402 ``{"error": ...}`` when the amount is zero or less (as real gateways do).
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .effects import ChargeCard
from .model import Charge, PaymentDeclined


class _GatewayHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/charges":
            return self._reply(404, {"error": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            amount = Decimal(body["amount"])
            token = str(body["card_token"])
        except (ValueError, KeyError, InvalidOperation):
            return self._reply(400, {"error": "malformed charge request"})
        if amount <= 0:
            return self._reply(
                402, {"error": "amount must be greater than zero", "code": "invalid_amount"}
            )
        if token.startswith("tok_declined"):
            return self._reply(402, {"error": "card declined", "code": "card_declined"})
        self._reply(201, {"charge_id": "ch_" + secrets.token_hex(6), "amount": str(amount)})

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port: int = 0) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _GatewayHandler)
    print(f"gateway listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class GatewayClient:
    """The production performer of ``ChargeCard``."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def charge(self, effect: ChargeCard) -> Charge:
        body = json.dumps({"card_token": effect.card_token, "amount": str(effect.amount)}).encode()
        request = urllib.request.Request(
            self.base_url + "/charges", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            payload = json.loads(error.read() or b"{}")
            if error.code == 402:
                raise PaymentDeclined(
                    payload.get("error", "declined"), payload.get("code", "declined")
                ) from None
            raise
        return Charge(payload["charge_id"], Decimal(payload["amount"]))

    def performers(self) -> dict:
        return {ChargeCard: self.charge}


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
