"""HQ's WeChat configuration."""

from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session
from guideapp.wechat import schemas as s
from guideapp.wechat import service

blp = Blueprint("wechat", __name__, url_prefix="/api/v1", description="WeChat apps of the brand")


@blp.route("/wechat/config")
class WechatConfig(MethodView):
    @blp.response(200, s.WechatConfigSchema)
    def get(self):
        """The brand's WeChat apps (HQ); secrets are never returned, only `*_set`"""
        return service.get_config(db_session(), actor=current_actor())

    @blp.arguments(s.WechatConfigUpdateSchema)
    @blp.response(200, s.WechatConfigSchema)
    @blp.alt_response(503, description="No GUIDEAPP_WECHAT_SECRETS_KEY: secrets cannot be stored")
    def put(self, data):
        """Set the fields sent (null clears one); secrets left out are kept"""
        return service.put_config(db_session(), actor=current_actor(), data=data)
