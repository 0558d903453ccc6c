"""Organisation: tenants, brands, regions, stores and staff."""
