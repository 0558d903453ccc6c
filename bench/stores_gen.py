"""Deterministic synthetic stores and scan positions across China, and a fast bulk insert."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import text

from guideapp.org.geo import StoreRow

# (name, lat, lng, weight): city centres; weight ~ how many stores a chain keeps there.
CITIES = [
    ("Shanghai", 31.2304, 121.4737, 10),
    ("Beijing", 39.9042, 116.4074, 10),
    ("Guangzhou", 23.1291, 113.2644, 8),
    ("Shenzhen", 22.5431, 114.0579, 8),
    ("Chengdu", 30.5728, 104.0668, 7),
    ("Chongqing", 29.5630, 106.5516, 7),
    ("Hangzhou", 30.2741, 120.1551, 6),
    ("Wuhan", 30.5928, 114.3055, 6),
    ("Xi'an", 34.3416, 108.9398, 5),
    ("Nanjing", 32.0603, 118.7969, 5),
    ("Tianjin", 39.3434, 117.3616, 5),
    ("Suzhou", 31.2990, 120.5853, 5),
    ("Changsha", 28.2282, 112.9388, 4),
    ("Zhengzhou", 34.7466, 113.6254, 4),
    ("Dongguan", 23.0207, 113.7518, 4),
    ("Qingdao", 36.0671, 120.3826, 4),
    ("Shenyang", 41.8057, 123.4315, 4),
    ("Ningbo", 29.8683, 121.5440, 3),
    ("Kunming", 24.8801, 102.8329, 3),
    ("Foshan", 23.0215, 113.1214, 3),
    ("Hefei", 31.8206, 117.2272, 3),
    ("Harbin", 45.8038, 126.5350, 3),
    ("Dalian", 38.9140, 121.6147, 3),
    ("Jinan", 36.6512, 117.1201, 3),
    ("Fuzhou", 26.0745, 119.2965, 3),
    ("Xiamen", 24.4798, 118.0894, 3),
    ("Changchun", 43.8171, 125.3235, 2),
    ("Shijiazhuang", 38.0428, 114.5149, 2),
    ("Nanning", 22.8170, 108.3665, 2),
    ("Nanchang", 28.6820, 115.8579, 2),
    ("Guiyang", 26.6470, 106.6302, 2),
    ("Taiyuan", 37.8706, 112.5489, 2),
    ("Wuxi", 31.4912, 120.3119, 2),
    ("Wenzhou", 27.9943, 120.6994, 2),
    ("Lanzhou", 36.0611, 103.8343, 2),
    ("Urumqi", 43.8256, 87.6168, 2),
    ("Hohhot", 40.8424, 111.7490, 1),
    ("Yinchuan", 38.4872, 106.2309, 1),
    ("Xining", 36.6171, 101.7782, 1),
    ("Lhasa", 29.6520, 91.1721, 1),
    ("Haikou", 20.0440, 110.1999, 1),
    ("Sanya", 18.2528, 109.5119, 1),
    ("Kashgar", 39.4704, 75.9898, 1),
    ("Mohe", 52.9723, 122.5387, 1),
    ("Heihe", 50.2450, 127.4880, 1),
    ("Hailar", 49.2116, 119.7365, 1),
    ("Qiqihar", 47.3543, 123.9182, 1),
    ("Jilin", 43.8378, 126.5494, 1),
    ("Baotou", 40.6574, 109.8403, 1),
    ("Xuzhou", 34.2058, 117.2841, 2),
    ("Yantai", 37.4638, 121.4479, 2),
    ("Luoyang", 34.6197, 112.4540, 1),
    ("Shantou", 23.3541, 116.6819, 1),
    ("Zhuhai", 22.2710, 113.5767, 1),
    ("Guilin", 25.2736, 110.2900, 1),
    ("Lijiang", 26.8721, 100.2299, 1),
    ("Yichang", 30.6920, 111.2865, 1),
    ("Ganzhou", 25.8310, 114.9350, 1),
    ("Tangshan", 39.6305, 118.1802, 1),
    ("Changzhou", 31.8112, 119.9741, 2),
]
CITY_SPREAD_DEG = 0.12  # gaussian sigma around a centre, ~13 km
RURAL_SHARE = 0.08
CLOSED_SHARE = 0.05
LAT_RANGE, LNG_RANGE = (18.0, 53.0), (73.0, 135.0)
RADIUS_RANGE_M = (1_000, 20_000)


@dataclass(frozen=True)
class Position:
    lat: float
    lng: float
    kind: str  # city, rural or outside (in the sea, far from every store)


def generate_stores(count: int, *, seed: int = 20240601) -> list[StoreRow]:
    """`count` stores: most around city centres, some uniformly rural; ~5% closed."""
    rng = random.Random(seed)
    weights = [city[3] for city in CITIES]
    stores = []
    for index in range(count):
        if rng.random() < RURAL_SHARE:
            lat, lng = rng.uniform(*LAT_RANGE), rng.uniform(*LNG_RANGE)
        else:
            lat, lng = _near_city(rng, rng.choices(CITIES, weights)[0], CITY_SPREAD_DEG)
        stores.append(
            StoreRow(
                id=f"{rng.getrandbits(128):032x}",
                code=f"S{index:07d}",
                lat=round(lat, 6),
                lng=round(lng, 6),
                service_radius_m=rng.randint(*RADIUS_RANGE_M),
                state="closed" if rng.random() < CLOSED_SHARE else "open",
            )
        )
    return stores


def generate_positions(count: int, *, seed: int = 20240602) -> list[Position]:
    """Scan positions: ~80% around cities, ~15% rural, ~5% at sea outside every radius."""
    rng = random.Random(seed)
    weights = [city[3] for city in CITIES]
    positions = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.80:
            lat, lng = _near_city(rng, rng.choices(CITIES, weights)[0], CITY_SPREAD_DEG * 1.5)
            positions.append(Position(lat, lng, "city"))
        elif roll < 0.95:
            positions.append(Position(rng.uniform(*LAT_RANGE), rng.uniform(*LNG_RANGE), "rural"))
        else:  # South China Sea / Philippine Sea: over 100 km from any store
            positions.append(Position(rng.uniform(5.0, 16.5), rng.uniform(112.0, 135.0), "outside"))
    return positions


def insert_stores(
    connection,
    stores: list[StoreRow],
    *,
    tenant_id: str,
    brand_id: str,
    region_id: str,
    batch: int = 25_000,
) -> None:
    """Set-based insert on PostgreSQL: one INSERT ... SELECT FROM unnest(arrays) per batch."""
    statement = text("""
        INSERT INTO stores (id, tenant_id, brand_id, region_id, code, name, city, address,
                            lat, lng, service_radius_m, state, opening_hours,
                            created_at, updated_at)
        SELECT s.id, :tenant_id, :brand_id, :region_id, s.code, 'Store ' || s.code, 'Bench',
               'Bench address ' || s.code, s.lat, s.lng, s.radius, s.state, '{}'::json,
               now(), now()
        FROM unnest(CAST(:ids AS text[]), CAST(:codes AS text[]), CAST(:lats AS float8[]),
                    CAST(:lngs AS float8[]), CAST(:radii AS int[]), CAST(:states AS text[]))
             AS s(id, code, lat, lng, radius, state)
    """)
    for start in range(0, len(stores), batch):
        chunk = stores[start : start + batch]
        connection.execute(
            statement,
            {
                "tenant_id": tenant_id,
                "brand_id": brand_id,
                "region_id": region_id,
                "ids": [s.id for s in chunk],
                "codes": [s.code for s in chunk],
                "lats": [s.lat for s in chunk],
                "lngs": [s.lng for s in chunk],
                "radii": [s.service_radius_m for s in chunk],
                "states": [s.state for s in chunk],
            },
        )


def _near_city(rng: random.Random, city: tuple, sigma_deg: float) -> tuple[float, float]:
    _name, lat, lng, _weight = city
    return lat + rng.gauss(0.0, sigma_deg), lng + rng.gauss(0.0, sigma_deg)
