"""A FAKE WeChat server for tests: never the real thing, no internet.

It answers exactly the endpoints guideapp calls, with the request and response shapes and
the error codes of WeChat's public documentation:
- GET  /cgi-bin/token                      (auth.getAccessToken)
  https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
- GET  /sns/jscode2session                 (auth.code2Session)
  https://developers.weixin.qq.com/miniprogram/dev/api-backend/open-api/login/auth.code2Session.html
- GET  /sns/oauth2/access_token            (web authorisation, snsapi_base)
  https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
- POST /wxa/business/getuserphonenumber    (phonenumber.getPhoneNumber)
  https://developers.weixin.qq.com/miniprogram/dev/api-backend/open-api/phonenumber/phonenumber.getPhoneNumber.html
- GET  /cgi-bin/ticket/getticket?type=jsapi (JS-SDK, appendix 1)
  https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/JS-SDK.html
- POST /wxa/getwxacodeunlimit              (wxacode.getUnlimited)
  https://developers.weixin.qq.com/miniprogram/dev/api-backend/open-api/qr-code/wxacode.getUnlimited.html
Errors (global return codes): 40001 invalid credential / access_token, 42001 access_token
expired, 40013 invalid appid, 40029 invalid code, 40163 code been used, -1 system busy,
45009 reach max api daily quota limit. Like WeChat, errors are HTTP 200 with a JSON body.

Tests issue codes on it (`fake.login_code(openid=..., unionid=...)`), expire tokens
(`fake.expire_tokens()`), and queue failures (`fake.fail_next("/sns/jscode2session", -1)`).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import segno
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

MESSAGES = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40029: "invalid code",
    40163: "code been used",
    42001: "access_token expired",
    45009: "reach max api daily quota limit",
    40129: "invalid scene",
    40169: "invalid length for scene, or the data is not json string",
    41030: "invalid page",
}
# Enough of a JPEG (SOI, JFIF APP0, EOI) for a test to see "an image came back".
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


@dataclass
class App:
    appid: str
    secret: str


@dataclass
class FakeWechat:
    """The fake's state; `url` is its base (GUIDEAPP_WECHAT_API_BASE in tests)."""

    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access_token -> appid
    expired: set[str] = field(default_factory=set)
    codes: dict[str, dict] = field(default_factory=dict)  # code -> what it stands for
    used: set[str] = field(default_factory=set)
    failures: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter = field(default_factory=Counter)
    requests: list[tuple[str, dict, bytes]] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)  # jsapi tickets issued, newest last
    # The released mini-program's pages: getwxacodeunlimit refuses any other (41030).
    pages: set[str] = field(default_factory=lambda: {"pages/index/index", "pages/scan/index"})
    url: str = ""

    # --- what tests do ---------------------------------------------------------------

    def add_app(self, appid: str, secret: str) -> App:
        self.apps[appid] = App(appid, secret)
        return self.apps[appid]

    def _issue(self, kind: str, appid: str, **meaning) -> str:
        code = secrets.token_hex(16)
        self.codes[code] = {"kind": kind, "appid": appid, **meaning}
        return code

    def login_code(self, appid: str, *, openid: str, unionid: str | None = None) -> str:
        """What wx.login gives the mini-program."""
        return self._issue("login", appid, openid=openid, unionid=unionid)

    def oauth_code(
        self, appid: str, *, openid: str, unionid: str | None = None, snapshot: bool = False
    ) -> str:
        """What WeChat appends to the redirect_uri after snsapi_base authorisation."""
        return self._issue("oauth", appid, openid=openid, unionid=unionid, snapshot=snapshot)

    def phone_code(self, appid: str, *, phone: str, country: str = "86") -> str:
        """What the getPhoneNumber button gives the mini-program."""
        return self._issue("phone", appid, phone=phone, country=country)

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 42001 from now on."""
        self.expired |= set(self.tokens)

    def invalidate_tokens(self) -> None:
        """Every access token issued so far answers 40001 (another party fetched anew)."""
        for token in list(self.tokens):
            self.tokens[token] = ""

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        self.failures[path].extend([errcode] * times)

    def reset(self) -> None:
        """Forget everything but the url (the shared server outlives each test)."""
        url = self.url
        self.__init__()  # type: ignore[misc]
        self.url = url

    # --- the server ---------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.calls[request.path] += 1
        self.requests.append((request.path, dict(request.args), request.get_data()))
        handler = ROUTES.get((request.method, request.path))
        if handler is None:
            response = Response("not found", status=404)
        elif self.failures[request.path]:
            response = _error(self.failures[request.path].pop(0))
        else:
            response = handler(self, request)
        return response(environ, start_response)

    def _token_error(self, request: Request) -> Response | None:
        token = request.args.get("access_token", "")
        if token in self.expired:
            return _error(42001)
        if not self.tokens.get(token):
            return _error(40001)
        return None

    def _app_of(self, request: Request) -> App | Response:
        app = self.apps.get(request.args.get("appid", ""))
        if app is None:
            return _error(40013)
        if request.args.get("secret") != app.secret:
            return _error(40001)  # "AppSecret error or AppSecret does not belong to this app"
        return app

    def _take_code(self, code: str, kind: str, appid: str) -> dict | Response:
        meaning = self.codes.get(code)
        if meaning is None or meaning["kind"] != kind or meaning["appid"] != appid:
            return _error(40029)
        if code in self.used:
            return _error(40163)
        self.used.add(code)
        return meaning


def _json(payload: dict) -> Response:
    return Response(json.dumps(payload), mimetype="application/json")


def _error(errcode: int) -> Response:
    rid = secrets.token_hex(4)
    return _json({"errcode": errcode, "errmsg": f"{MESSAGES.get(errcode, 'error')} rid: {rid}"})


def _token(fake: FakeWechat, request: Request) -> Response:
    if request.args.get("grant_type") != "client_credential":
        return _error(40002)
    app = fake._app_of(request)
    if isinstance(app, Response):
        return app
    token = secrets.token_hex(24)
    fake.tokens[token] = app.appid
    return _json({"access_token": token, "expires_in": 7200})


def _jscode2session(fake: FakeWechat, request: Request) -> Response:
    app = fake._app_of(request)
    if isinstance(app, Response):
        return app
    if request.args.get("grant_type") != "authorization_code":
        return _error(40002)
    meaning = fake._take_code(request.args.get("js_code", ""), "login", app.appid)
    if isinstance(meaning, Response):
        return meaning
    answer = {"openid": meaning["openid"], "session_key": secrets.token_urlsafe(16)}
    if meaning["unionid"]:
        answer["unionid"] = meaning["unionid"]
    return _json(answer)


def _oauth2_access_token(fake: FakeWechat, request: Request) -> Response:
    app = fake._app_of(request)
    if isinstance(app, Response):
        return app
    meaning = fake._take_code(request.args.get("code", ""), "oauth", app.appid)
    if isinstance(meaning, Response):
        return meaning
    answer = {
        "access_token": secrets.token_hex(24),
        "expires_in": 7200,
        "refresh_token": secrets.token_hex(24),
        "openid": meaning["openid"],
        "scope": "snsapi_base",
    }
    if meaning["snapshot"]:
        answer["is_snapshotuser"] = 1
    if meaning["unionid"]:
        answer["unionid"] = meaning["unionid"]
    return _json(answer)


def _getuserphonenumber(fake: FakeWechat, request: Request) -> Response:
    if (refused := fake._token_error(request)) is not None:
        return refused
    appid = fake.tokens[request.args["access_token"]]
    try:
        code = json.loads(request.get_data() or b"{}").get("code", "")
    except ValueError:
        return _error(47001)  # data format error
    meaning = fake._take_code(code, "phone", appid)
    if isinstance(meaning, Response):
        return meaning
    pure = meaning["phone"]
    return _json(
        {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": pure
                if meaning["country"] == "86"
                else f"+{meaning['country']}{pure}",
                "purePhoneNumber": pure,
                "countryCode": meaning["country"],
                "watermark": {"timestamp": int(time.time()), "appid": appid},
            },
        }
    )


def _getticket(fake: FakeWechat, request: Request) -> Response:
    if (refused := fake._token_error(request)) is not None:
        return refused
    if request.args.get("type") != "jsapi":
        return _error(40097)  # invalid args
    fake.tickets.append(secrets.token_urlsafe(48))
    return _json({"errcode": 0, "errmsg": "ok", "ticket": fake.tickets[-1], "expires_in": 7200})


# The characters a scene may hold (wxacode.getUnlimited: "其它字符请自行编码").
SCENE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@._~-]*$")


def _getwxacodeunlimit(fake: FakeWechat, request: Request) -> Response:
    """A real image of the scene and page (a QR code standing in for WeChat's round code):
    PNG with is_hyaline (transparent background), else JPEG as WeChat sends."""
    if (refused := fake._token_error(request)) is not None:
        return refused
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        return _error(40169)  # "or the data is not json string"
    scene = body.get("scene")
    if not isinstance(scene, str) or not 1 <= len(scene) <= 32:
        return _error(40169)  # invalid length for scene
    if not SCENE.match(scene):
        return _error(40129)  # invalid scene
    page = body.get("page") or "pages/index/index"
    if page not in fake.pages:
        return _error(41030)  # invalid page: not in the released mini-program
    if not body.get("is_hyaline"):
        return Response(JPEG, mimetype="image/jpeg")
    buffer = io.BytesIO()
    segno.make(f"{page}?scene={scene}", error="m").save(buffer, kind="png", scale=4)
    return Response(buffer.getvalue(), mimetype="image/png")


ROUTES = {
    ("GET", "/cgi-bin/token"): _token,
    ("GET", "/sns/jscode2session"): _jscode2session,
    ("GET", "/sns/oauth2/access_token"): _oauth2_access_token,
    ("POST", "/wxa/business/getuserphonenumber"): _getuserphonenumber,
    ("GET", "/cgi-bin/ticket/getticket"): _getticket,
    ("POST", "/wxa/getwxacodeunlimit"): _getwxacodeunlimit,
}


class FakeWechatServer:
    """The fake on a free loopback port, in a thread; `with FakeWechatServer() as fake:`."""

    def __init__(self):
        self.fake = FakeWechat()
        self._server = make_server("127.0.0.1", 0, self.fake, threaded=True)
        self.fake.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeWechat:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join()


_shared: FakeWechatServer | None = None


def shared() -> FakeWechat:
    """The one fake of a test session, started on first use (every test app points at it,
    so no test can reach the real WeChat)."""
    global _shared
    if _shared is None:
        _shared = FakeWechatServer()
        _shared.__enter__()
    return _shared.fake


def main() -> None:
    """`python -m tests.fake_wechat 8213 wx...:secret ...`: the fake on a fixed port, for
    trying the app by hand (docs/wechat.md). POST /_fake/<kind>_code?appid=&openid=&phone=
    issues a code (kind: login, oauth, phone); POST /_fake/expire_tokens expires tokens."""
    import sys

    from werkzeug.serving import run_simple

    fake = FakeWechat()
    for pair in sys.argv[2:]:
        fake.add_app(*pair.split(":", 1))

    def app(environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_fake/"):
            args = request.args
            kind = request.path.removeprefix("/_fake/")
            if kind == "expire_tokens":
                fake.expire_tokens()
                return _json({"ok": True})(environ, start_response)
            issue = {"login_code": fake.login_code, "oauth_code": fake.oauth_code}
            if kind in issue:
                code = issue[kind](
                    args["appid"], openid=args["openid"], unionid=args.get("unionid")
                )
            elif kind == "phone_code":
                code = fake.phone_code(args["appid"], phone=args["phone"])
            else:
                return Response("unknown", status=404)(environ, start_response)
            return _json({"code": code})(environ, start_response)
        return fake(environ, start_response)

    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)


if __name__ == "__main__":
    main()
