"""Channel codes (LBS campaign, store and guide QR codes), scan routing and attribution."""
