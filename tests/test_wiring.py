"""Cross-domain reactions are connected by one function, only when called, and only once."""

import subprocess
import sys

from guideapp.members import signals as members
from guideapp.org import signals as org
from guideapp.scans import signals as scans
from guideapp.tasks import signals as tasks
from guideapp.wiring import connect_reactions

EXPECTED = {
    members.member_recruited: 1,
    members.members_recruited: 1,
    members.members_transferred: 2,
    members.members_merged: 3,
    members.orders_recorded: 3,
    members.refunds_recorded: 2,
    members.member_card_requested: 2,
    members.member_cards_moved: 1,
    tasks.scheduler_ticked: 4,
    tasks.inbox_suggestions_requested: 1,
    scans.code_changed: 1,
    scans.scan_resolved: 2,
    org.staff_signed_off: 4,
    org.staff_password_changed: 2,
}


def test_connecting_again_changes_nothing():
    connect_reactions()
    connect_reactions()
    assert {s: len(s.receivers) for s in EXPECTED} == EXPECTED


CHECK = """
import guideapp, guideapp.wiring, guideapp.cli, guideapp.members.service, guideapp.tasks.inbox
from guideapp.members import signals as members
from guideapp.tasks import signals as tasks
from guideapp.scans import signals as scans
every = [*members.members.values(), *tasks.tasks.values(), *scans.scans.values()]
assert not any(s.receivers for s in every), "importing connected receivers"
from guideapp import create_app
from guideapp.config import Config
create_app(Config(DATABASE_URL="sqlite://", SECRET_KEY="k" * 40))
assert all(s.receivers for s in every), [s.name for s in every if not s.receivers]
"""


def test_importing_connects_nothing_and_create_app_connects_everything():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
