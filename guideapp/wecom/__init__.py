"""WeCom (企业微信): the brand's corp, its callbacks, customers guides add there (docs/wecom.md)."""
