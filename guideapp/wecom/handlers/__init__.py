"""The effects of WeCom's events, registered with events.handles on import. Imported by
guideapp/wecom/routes.py, so the web app and the job worker (which creates the app through
wsgi) both have them. transfer_fail is registered by transfers.py, not here."""

from guideapp.wecom.handlers import contacts  # noqa: F401
