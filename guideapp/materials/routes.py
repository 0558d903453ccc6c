"""Material library: list, create, edit (ETag), share, stats, uploads and categories."""

import io

from flask import current_app, send_file
from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.materials import schemas as s
from guideapp.materials import service, stats
from guideapp.pagination import CursorArgsSchema
from guideapp.http import current_actor, db_session, scoped_read_session

blp = Blueprint("materials", __name__, url_prefix="/api/v1", description="Material library")


def _storage():
    return current_app.extensions["guideapp"]["storage"]


@blp.route("/materials")
class Materials(MethodView):
    @blp.replica_read
    @blp.arguments(s.MaterialQueryArgsSchema, location="query")
    @blp.response(200, s.MaterialPageSchema)
    def get(self, args):
        """Materials valid now and aimed at me (HQ: all), newest first"""
        return service.list_materials(scoped_read_session(), actor=current_actor(), **args)

    @blp.arguments(s.MaterialSchema)
    @blp.response(201, s.MaterialSchema)
    def post(self, data):
        """Add a material: HQ level (targeted), store level (managers) or personal"""
        return service.create_material(db_session(), actor=current_actor(), data=data)


@blp.route("/materials/<material_id>")
class MaterialById(MethodView):
    @blp.etag
    @blp.response(200, s.MaterialSchema)
    def get(self, material_id):
        """One material (its ETag guards edits)"""
        return service.get_material(db_session(), actor=current_actor(), material_id=material_id)

    @blp.etag
    @blp.arguments(s.MaterialUpdateSchema)
    @blp.response(200, s.MaterialSchema)
    @blp.alt_response(412, description="Someone else changed it: fetch it again.")
    @blp.alt_response(428, description="Send If-Match with the ETag you fetched.")
    def patch(self, data, material_id):
        """Edit a material; requires If-Match with the current ETag"""
        actor = current_actor()
        material = service.get_material(db_session(), actor=actor, material_id=material_id)
        blp.check_etag(material, s.MaterialSchema)
        return service.update_material(db_session(), actor=actor, material=material, data=data)


@blp.route("/materials/<material_id>/shares")
class MaterialShares(MethodView):
    @blp.arguments(s.ShareSchema)
    @blp.response(201, s.ShareSchema)
    def post(self, data, material_id):
        """Record that I shared a material (to a member, a group or Moments)"""
        return service.record_share(
            db_session(),
            actor=current_actor(),
            material_id=material_id,
            channel=data["channel"],
            member_id=data.get("member_id"),
            share_id=data.get("id"),
            shared_at_client=data.get("shared_at_client"),
        )


@blp.route("/materials/stats")
class MaterialStats(MethodView):
    @blp.arguments(s.ShareStatsArgsSchema, location="query")
    @blp.response(200, s.ShareStatsRowSchema(many=True))
    def get(self, args):
        """Shares per material, guide, store or day, and how many were followed by orders"""
        return stats.share_stats(db_session(), actor=current_actor(), **args)


@blp.route("/uploads")
class Uploads(MethodView):
    @blp.arguments(s.UploadFileSchema, location="files")
    @blp.response(201, s.UploadSchema)
    def post(self, files):
        """Upload a file (images 10 MB, mp4 100 MB, pdf 20 MB) for a material"""
        upload = files["file"]
        return service.store_upload(
            db_session(),
            actor=current_actor(),
            storage=_storage(),
            filename=upload.filename or "",
            data=upload.read(),
        )


@blp.route("/uploads/<upload_id>")
class UploadById(MethodView):
    @blp.response(200, description="The file's bytes.")
    def get(self, upload_id):
        """Download an uploaded file"""
        upload = service.get_upload(db_session(), actor=current_actor(), upload_id=upload_id)
        response = send_file(
            io.BytesIO(_storage().read(upload.storage_key)),
            mimetype=upload.content_type,  # what the bytes are, whatever the name said
            download_name=service.served_name(upload),
            etag=upload.checksum,
            conditional=True,
        )
        # Never a page: even a polyglot a browser were to sniff as HTML runs no script.
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return response


@blp.route("/material-categories")
class Categories(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.CategoryPageSchema)
    def get(self, args):
        """The category tree, as rows with parent ids"""
        return service.list_categories(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.CategorySchema)
    @blp.response(201, s.CategorySchema)
    def post(self, data):
        """Add a category (HQ)"""
        return service.create_category(
            db_session(), actor=current_actor(), name=data["name"], parent_id=data.get("parent_id")
        )
