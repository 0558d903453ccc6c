"""Liveness and readiness probes for the load balancer."""

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from guideapp.migrations import alembic_config
from guideapp.http import db_session

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
def readyz():
    """Ready when the database answers and its schema is at the migrations' head."""
    heads = set(ScriptDirectory.from_config(alembic_config(current_app.config)).get_heads())
    try:
        connection = db_session().connection()
        connection.execute(text("SELECT 1"))
        current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        return {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, 503
    if current != heads:
        return {
            "status": "unavailable",
            "database": "reachable",
            "migrations": {"current": sorted(current), "head": sorted(heads)},
        }, 503
    return {"status": "ok", "database": "reachable", "migrations": sorted(heads)}
