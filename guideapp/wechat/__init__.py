"""WeChat: per-tenant app configuration, wechatpy clients, identities WeChat vouches for."""
