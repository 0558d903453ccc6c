"""The CLI is a way in like the routes: it runs the same services in one transaction each."""

from sqlalchemy import func, select

from guideapp.config import PROJECT_ROOT
from guideapp.members.models import Member
from guideapp.tasks.models import Task


def test_demo_logins_are_printed(app):
    result = app.test_cli_runner().invoke(args=["demo", "logins"])
    assert result.exit_code == 0
    assert "13800000001" in result.output


def test_scheduler_tick_runs_once_per_moment(app, session):
    runner = app.test_cli_runner()
    args = ["scheduler", "tick", "--tenant", "stride", "--now", "2026-11-23T10:00:00+0800"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("stride: days ")
    tasks = session.scalar(select(func.count()).select_from(Task))
    again = runner.invoke(args=args)
    assert again.exit_code == 0, again.output
    assert "created 0 sop tasks, 0 calendar tasks\nscheduler tick: 1/1 tenants\n" in again.output
    assert session.scalar(select(func.count()).select_from(Task)) == tasks


def test_an_unknown_tenant_is_a_usage_error(app):
    result = app.test_cli_runner().invoke(args=["scheduler", "tick", "--tenant", "nobody"])
    assert result.exit_code == 2
    assert "no tenant 'nobody'" in result.output


def test_settle_refuses_a_month_that_is_not_over_without_writing(app):
    result = app.test_cli_runner().invoke(
        args=["commissions", "settle", "--month", "2999-01", "--tenant", "stride"]
    )
    assert result.exit_code != 0
    assert "stride:" in result.output


def test_a_dry_run_import_reports_and_writes_nothing(app, session):
    members = session.scalar(select(func.count()).select_from(Member))
    file = PROJECT_ROOT / "fixtures" / "imports" / "members.csv"
    result = app.test_cli_runner().invoke(args=["import", "members", str(file), "--dry-run"])
    assert "dry run, nothing written" in result.output, result.output
    assert session.scalar(select(func.count()).select_from(Member)) == members
