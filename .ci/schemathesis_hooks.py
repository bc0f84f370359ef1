"""Signs schemathesis in as the fuzzing admin, again every second: some operations it calls
(logout-all of a user it found, a session it deleted) end the session it runs with."""

import json
import os
import urllib.request

import schemathesis


@schemathesis.auth(refresh_interval=1)
class NauthAdmin:
    def get(self, case, context):
        body = json.dumps(
            {"identifier": os.environ["FUZZ_ADMIN"], "password": os.environ["FUZZ_PASSWORD"]}
        ).encode()
        request = urllib.request.Request(
            os.environ["FUZZ_BASE"] + "/auth/login",
            data=body,
            headers={"content-type": "application/json", "x-token-delivery": "json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.load(answer)
        if "accessToken" not in body:
            raise RuntimeError(f"the fuzzing admin's login answered {body}")
        return body["accessToken"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
