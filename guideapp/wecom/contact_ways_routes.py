"""「联系我」 contact ways of our codes: read them, set a store code's rule, sync them all."""

from flask.views import MethodView

from guideapp.http import current_actor, db_session
from guideapp.jobs.http import LOCATION_HEADER, accepted
from guideapp.jobs.schemas import JobSchema
from guideapp.wecom import contact_ways
from guideapp.wecom import schemas as s
from guideapp.wecom.routes import blp


@blp.route("/contact-ways")
class ContactWays(MethodView):
    @blp.arguments(s.ContactWayArgsSchema, location="query")
    @blp.response(200, s.ContactWayPageSchema)
    def get(self, args):
        """Contact ways, newest first (HQ: all; manager: the store's; guide: their own)"""
        return contact_ways.list_ways(db_session(), actor=current_actor(), **args)


@blp.route("/contact-ways/sync")
class ContactWaysSync(MethodView):
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    def post(self):
        """Make every guide and store code's way and sync all with WeCom (HQ): a job"""
        return accepted(contact_ways.sync_all(db_session(), actor=current_actor()))


@blp.route("/codes/<code_id>/way-rule")
class WayRule(MethodView):
    @blp.response(200, s.WayRuleSchema)
    def get(self, code_id):
        """A store code's rule: its guides, daily cap per guide, backup guide"""
        return contact_ways.get_rule(db_session(), actor=current_actor(), code_id=code_id)

    @blp.arguments(s.WayRuleUpdateSchema)
    @blp.response(200, s.WayRuleSchema)
    def put(self, data, code_id):
        """Set the fields sent (HQ, or the store's manager); the way follows by a job"""
        return contact_ways.put_rule(
            db_session(), actor=current_actor(), code_id=code_id, data=data
        )
