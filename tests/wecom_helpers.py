"""The demo brand's WeCom corp on the fake (tests/fake_wecom.py), configured through the API."""

from __future__ import annotations

from dataclasses import dataclass

CORP_ID = "ww00000000000000a1"
CONTACT_SECRET = "contactsecret0000000000000000000000000000a1"
AGENT_ID = 1000002
AGENT_SECRET = "agentsecret000000000000000000000000000000a1"
TOKEN = "guideappToken01"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom makes them
CALLBACK = "/api/v1/wecom/callback/stride"


@dataclass
class Corp:
    fake: object
    corp_id: str = CORP_ID
    token: str = TOKEN
    aes_key: str = AES_KEY

    def callback(self, fields: dict, **kwargs):
        """(query args, body) of WeCom's POST of `fields` to our callback URL."""
        return self.fake.callback(self.corp_id, self.token, self.aes_key, fields, **kwargs)


def configure(api, hq_phone: str, **overrides) -> dict:
    body = {
        "corp_id": CORP_ID,
        "contact_secret": CONTACT_SECRET,
        "agent_id": AGENT_ID,
        "agent_secret": AGENT_SECRET,
        "callback_token": TOKEN,
        "callback_aes_key": AES_KEY,
        **overrides,
    }
    response = api.client.put("/api/v1/wecom/config", json=body, headers=api.headers(hq_phone))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def post_callback(client, args: dict, body, path: str = CALLBACK):
    return client.post(path, query_string=args, data=body, content_type="text/xml")
