#!/usr/bin/env python3
"""A carehook client driven by its OpenAPI document: no generated code.

It reads /api/v1/openapi.json, finds each operation by its operationId,
fills the path, checks the request body against the operation's schema
before sending, and checks the answer against the documented response
schema. Standard library only, plus `jsonschema` when it is installed (it
comes with openapi-spec-validator); without it the checks are skipped.

    python3 scripts/carehook_client.py http://127.0.0.1:8080 "$CAREHOOK_TOKEN" \
        listWebhooks
    python3 scripts/carehook_client.py URL TOKEN createWebhook '{"name": ...}'
    python3 scripts/carehook_client.py URL TOKEN getWebhook id=<uuid>

From Python:

    api = Client(url, token)
    hook = api.call("createWebhook", body={...})
    api.call("pushEvent", body={"event": "kc_appointment_book", "data": {...}})
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    import jsonschema
except ImportError:  # checks are skipped, requests still go out
    jsonschema = None


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token
        self.doc = self._request("GET", "/api/v1/openapi.json", None)[1]
        self.operations = {}
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and "operationId" in op:
                    self.operations[op["operationId"]] = (method.upper(), path, op)

    def _request(self, method, path, body):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def _check(self, schema, value, what):
        if jsonschema is None or schema is None:
            return
        # `$ref`s point into the document's components: resolve them there.
        root = dict(schema)
        root["components"] = self.doc.get("components", {})
        try:
            jsonschema.Draft202012Validator(root).validate(value)
        except jsonschema.ValidationError as e:
            raise ValueError(f"{what} does not match the document: {e.message}") from None

    def call(self, operation_id, body=None, query=None, **path_params):
        if operation_id not in self.operations:
            raise KeyError(f"no operation {operation_id!r}; the document has: "
                           + ", ".join(sorted(self.operations)))
        method, path, op = self.operations[operation_id]
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        if "{" in path:
            raise ValueError(f"{operation_id} needs path parameters: {path}")
        if query:
            path += "?" + urllib.parse.urlencode(query)
        request_schema = (op.get("requestBody", {}).get("content", {})
                          .get("application/json", {}).get("schema"))
        if body is not None:
            self._check(request_schema, body, f"the body for {operation_id}")
        status, answer = self._request(method, path, body)
        documented = op.get("responses", {}).get(str(status))
        if status >= 400:
            raise ApiError(status, answer)
        if documented is None:
            raise ValueError(f"{operation_id} answered {status}, which the document does not list")
        answer_schema = (documented.get("content", {}).get("application/json", {})
                         .get("schema"))
        if answer is not None:
            self._check(answer_schema, answer, f"the answer of {operation_id}")
        return answer


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    base, token, operation = argv[1], argv[2], argv[3]
    body, params = None, {}
    for arg in argv[4:]:
        if arg.startswith(("{", "[")):
            body = json.loads(arg)
        elif "=" in arg:
            k, v = arg.split("=", 1)
            params[k] = v
    try:
        answer = Client(base, token).call(operation, body=body, **params)
    except ApiError as e:
        print(json.dumps(e.body, indent=2), file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
