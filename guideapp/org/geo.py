"""Coordinates: stores are kept in GCJ-02; positions may arrive in WGS-84 (wx.getLocation)."""
import warnings

import prcoords

COORD_SYSTEMS = ("gcj02", "wgs84")


def to_gcj02(lat: float, lng: float, coord_system: str) -> tuple[float, float]:
    """Convert a position to GCJ-02 (outside China the two systems coincide)."""
    if coord_system == "gcj02":
        return lat, lng
    if coord_system == "wgs84":
        with warnings.catch_warnings():  # it warns when handed a point outside China
            warnings.simplefilter("ignore")
            converted = prcoords.wgs_gcj((lat, lng), True)
        return converted.lat, converted.lon
    raise ValueError(f"unknown coordinate system {coord_system!r}")
