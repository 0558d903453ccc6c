"""Stores, staff and regions for HQ and store managers."""

from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.org import schemas as s
from guideapp.org import service
from guideapp.pagination import CursorArgsSchema
from guideapp.http import current_actor, db_session

blp = Blueprint("org", __name__, url_prefix="/api/v1", description="Organisation")


@blp.route("/regions")
class Regions(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.RegionPageSchema)
    def get(self, args):
        """List the tenant's regions"""
        return service.list_regions(db_session(), actor=current_actor(), **args)


@blp.route("/stores")
class Stores(MethodView):
    @blp.arguments(s.StoreQueryArgsSchema, location="query")
    @blp.response(200, s.StorePageSchema)
    def get(self, args):
        """List the stores I can see (HQ: the tenant; others: their own store)"""
        return service.list_stores(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.StoreSchema)
    @blp.response(201, s.StoreSchema)
    def post(self, data):
        """Open a new store (HQ)"""
        return service.create_store(db_session(), actor=current_actor(), data=data)


@blp.route("/stores/<store_id>")
class StoreById(MethodView):
    @blp.response(200, s.StoreSchema)
    def get(self, store_id):
        """One store"""
        return service.get_store(db_session(), actor=current_actor(), store_id=store_id)

    @blp.arguments(s.StoreUpdateSchema)
    @blp.response(200, s.StoreSchema)
    def patch(self, data, store_id):
        """Edit a store (HQ: anything; its manager: phone, hours and QR links)"""
        return service.update_store(
            db_session(), actor=current_actor(), store_id=store_id, data=data
        )


@blp.route("/stores/<store_id>/close")
class CloseStore(MethodView):
    @blp.response(200, s.StoreSchema)
    def post(self, store_id):
        """Close a store: routing stops sending customers there (HQ)"""
        return service.set_store_state(
            db_session(), actor=current_actor(), store_id=store_id, state="closed"
        )


@blp.route("/stores/<store_id>/reopen")
class ReopenStore(MethodView):
    @blp.response(200, s.StoreSchema)
    def post(self, store_id):
        """Reopen a closed store (HQ)"""
        return service.set_store_state(
            db_session(), actor=current_actor(), store_id=store_id, state="open"
        )


@blp.route("/staff")
class StaffList(MethodView):
    @blp.arguments(s.StaffQueryArgsSchema, location="query")
    @blp.response(200, s.StaffPageSchema)
    def get(self, args):
        """List staff (HQ: the tenant; managers and guides: their store)"""
        return service.list_staff(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.StaffSchema)
    @blp.response(201, s.StaffSchema)
    def post(self, data):
        """Add a staff member (HQ: anyone; managers: guides of their store)"""
        return service.create_staff(db_session(), actor=current_actor(), data=data)


@blp.route("/staff/<staff_id>")
class StaffById(MethodView):
    @blp.response(200, s.StaffSchema)
    def get(self, staff_id):
        """One staff member"""
        return service.get_staff(db_session(), actor=current_actor(), staff_id=staff_id)

    @blp.arguments(s.StaffUpdateSchema)
    @blp.response(200, s.StaffSchema)
    def patch(self, data, staff_id):
        """Edit a staff member (a new password ends their logins)"""
        return service.update_staff(
            db_session(), actor=current_actor(), staff_id=staff_id, data=data
        )


@blp.route("/staff/<staff_id>/leave")
class StaffLeaves(MethodView):
    @blp.arguments(s.LeaveSchema, required=False)
    @blp.response(200, s.StaffSchema)
    def post(self, data, staff_id):
        """Mark a staff member as left: tokens die at once; members may move to a successor"""
        return service.mark_left(
            db_session(),
            actor=current_actor(),
            staff_id=staff_id,
            transfer_to=(data or {}).get("transfer_to"),
        )
