"""WeChat Pay v3: HQ's merchants and the payment / refund notifications WeChat sends us."""
