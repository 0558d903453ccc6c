"""guideapp: the backend of the store-guide mini-program and the HQ / manager consoles."""

from __future__ import annotations

from flask import Flask, send_from_directory

from guideapp.changelog.replicas import Replicas
from guideapp.config import Config
from guideapp.db import make_autocommit_sessionmaker, make_engine, make_sessionmaker
from guideapp.extensions import Api
from guideapp.http import JSONProvider, NoCookieSessions
from guideapp.jobs.service import QUEUE_KEY as JOBS_QUEUE_KEY
from guideapp.logs import configure_logging
from guideapp.security import check_mode
from guideapp.storage import SESSION_KEY as STORAGE_KEY
from guideapp.secretbox import SecretBox
from guideapp.storage import LocalStorage
from guideapp.changelog.pages import PageCache
from guideapp.access import register_access_rules
from guideapp.wiring import connect_reactions
from guideapp.wechat.clients import SETTINGS_KEY as WECHAT_SETTINGS_KEY
from guideapp.wechat.clients import DatabaseStorage, WechatSettings, make_storage
from guideapp.wecom.clients import SETTINGS_KEY as WECOM_SETTINGS_KEY
from guideapp.wecom.clients import WecomSettings


def create_app(config: Config | None = None, *, bind=None) -> Flask:
    """config -> access rules and reactions -> database -> API -> blueprints -> lifecycle -> CLI.

    `bind` lets tests hand in one connection so every request joins their transaction.
    """
    config = config or Config()
    register_access_rules()
    app = Flask(__name__)
    app.config.from_object(config)
    app.json = JSONProvider(app)
    app.session_interface = NoCookieSessions()
    configure_logging(app.config["LOG_LEVEL"])
    check_mode(app)  # production refuses demo settings; the demo says it is one
    connect_reactions()  # cross-domain signals -> receivers (guideapp/wiring.py)

    engine = None
    # Every session of this app carries its job queue: jobs started in it are enqueued
    # when it commits (guideapp/jobs/service.py).
    session_info: dict = {}
    if bind is None:
        engine = make_engine(
            app.config["DATABASE_URL"], slow_query_ms=app.config.get("SLOW_QUERY_MS")
        )
        sessionmaker = make_sessionmaker(engine, info=session_info)
        autocommit_sessionmaker = make_autocommit_sessionmaker(engine)
    else:
        sessionmaker = make_sessionmaker(
            bind, join_transaction_mode="create_savepoint", info=session_info
        )
        autocommit_sessionmaker = sessionmaker
    # ...and its storage: a job writing a file (an export) finds it there.
    session_info[STORAGE_KEY] = storage = LocalStorage(app.config["UPLOAD_DIR"])
    app.extensions["guideapp"] = {
        "engine": engine,
        "sessionmaker": sessionmaker,
        "autocommit_sessionmaker": autocommit_sessionmaker,
        "storage": storage,
        "inbox_cache": PageCache(app.config["INBOX_CACHE_BYTES"]),
        "me_cache": PageCache(app.config["ME_CACHE_BYTES"]),
        "secretbox": _secretbox(app.config),
        # Standbys for replica_read views; none when tests bind one connection.
        "replicas": Replicas(
            app.config.get("REPLICA_URLS", []) if bind is None else [],
            slow_query_ms=app.config.get("SLOW_QUERY_MS"),
        ),
    }
    session_info[JOBS_QUEUE_KEY] = app.extensions["guideapp"]["jobs"] = _job_queue(
        app, sessionmaker
    )
    # ...and the WeChat settings its services call WeChat with (guideapp/wechat/clients.py).
    session_info[WECHAT_SETTINGS_KEY] = app.extensions["guideapp"]["wechat"] = _wechat(
        app, autocommit_sessionmaker
    )
    # ...and the WeCom ones (guideapp/wecom/clients.py), tokens in the same shared cache.
    session_info[WECOM_SETTINGS_KEY] = app.extensions["guideapp"]["wecom"] = _wecom(app)

    api = Api(app)
    app.extensions["guideapp"]["api"] = api
    _register_blueprints(app, api)
    _serve_docs_assets(app)

    from guideapp.web import init_request_lifecycle

    init_request_lifecycle(app)

    from guideapp.security import register_security

    register_security(app)  # security headers, CORS for the configured origins

    from guideapp.cli import register_cli

    register_cli(app)

    from guideapp.metrics import register_metrics

    register_metrics(app)  # GET /metrics and `jobs stats`
    return app


def _job_queue(app: Flask, sessionmaker):
    from guideapp.jobs.queue import JobQueue
    from guideapp.jobs.runner import Settings

    return JobQueue(
        url=app.config["JOBS_URL"],
        name=app.config["JOBS_NAME"],
        sessionmaker=sessionmaker,
        settings=Settings.from_config(app.config),
        app=app,
    )


def _secretbox(config) -> SecretBox:
    """A malformed GUIDEAPP_WECHAT_SECRETS_KEY stops the app here, before it serves."""
    try:
        return SecretBox.from_config(config)
    except ValueError as error:
        raise RuntimeError(
            "GUIDEAPP_WECHAT_SECRETS_KEY must be Fernet keys (comma-separated), e.g. from "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'`"
        ) from error


def _wechat(app: Flask, sessionmaker) -> WechatSettings:
    config = app.config
    box = app.extensions["guideapp"]["secretbox"]
    return WechatSettings(
        api_base=config["WECHAT_API_BASE"],
        oauth_base=config["WECHAT_OAUTH_BASE"],
        # Tests (one bound connection) keep the cache in their transaction.
        storage=DatabaseStorage(sessionmaker)
        if app.extensions["guideapp"]["engine"] is None
        else make_storage(
            config["WECHAT_CACHE_URL"],
            sessionmaker,
            config["DATABASE_URL"],
            config["WECHAT_CACHE_SQLITE_URL"],
        ),
        box=box,
        timeout=config["WECHAT_TIMEOUT_SECONDS"],
        mp_code_page=config["WECHAT_MP_CODE_PAGE"],
        env=config["WECHAT_ENV"],
    )


def _wecom(app: Flask) -> WecomSettings:
    config, extensions = app.config, app.extensions["guideapp"]
    return WecomSettings(
        api_base=config["WECOM_API_BASE"],
        storage=extensions["wechat"].storage,
        box=extensions["secretbox"],
        timeout=config["WECOM_TIMEOUT_SECONDS"],
        timestamp_window_s=config["WECOM_TIMESTAMP_WINDOW_SECONDS"],
        max_callback_bytes=config["WECOM_MAX_CALLBACK_BYTES"],
        event_max_attempts=config["WECOM_EVENT_MAX_ATTEMPTS"],
        event_retry_s=config["WECOM_EVENT_RETRY_SECONDS"],
        transfer_poll_s=config["WECOM_TRANSFER_POLL_SECONDS"],
        transfer_retry_s=config["WECOM_TRANSFER_RETRY_SECONDS"],
        transfer_max_attempts=config["WECOM_TRANSFER_MAX_ATTEMPTS"],
    )


def _register_blueprints(app: Flask, api: Api) -> None:
    from guideapp import health
    from guideapp.audit.routes import blp as audit_blp
    from guideapp.auth.routes import blp as auth_blp
    from guideapp.commissions.routes import blp as commissions_blp
    from guideapp.coupons.routes import blp as coupons_blp
    from guideapp.jobs.routes import blp as jobs_blp
    from guideapp.materials.routes import blp as materials_blp
    from guideapp.members.routes import blp as members_blp
    from guideapp.org.routes import blp as org_blp
    from guideapp.replies.routes import blp as replies_blp
    from guideapp.scans.landing import blp as landing_blp
    from guideapp.scans.routes import blp as scans_blp
    from guideapp.sync.routes import blp as sync_blp
    from guideapp.tasks.routes import blp as tasks_blp
    from guideapp.wechat.routes import blp as wechat_blp
    from guideapp.wechatpay.routes import blp as wechatpay_blp
    from guideapp.wecom.routes import blp as wecom_blp

    app.register_blueprint(health.blp)
    app.register_blueprint(landing_blp)  # the HTML page QR codes open: not part of the API
    for blp in (
        auth_blp,
        org_blp,
        members_blp,
        tasks_blp,
        sync_blp,
        materials_blp,
        scans_blp,
        replies_blp,
        commissions_blp,
        coupons_blp,
        jobs_blp,
        wechat_blp,
        wechatpay_blp,
        wecom_blp,
        audit_blp,
    ):
        api.register_blueprint(blp)


def _serve_docs_assets(app: Flask) -> None:
    import swagger_ui_bundle

    @app.get("/docs-assets/<path:filename>")
    def docs_assets(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)
