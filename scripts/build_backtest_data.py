"""Rebuild reconciler/backtest/data/*.csv.gz from the raw sources (see that folder's SOURCES.md).

Run from the repository root with the raw folder as argument:

    python3 scripts/build_backtest_data.py /path/to/shared/data/raw

Outputs are deterministic (gzip mtime 0), so a rebuild from the same inputs is byte-identical.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path("reconciler/backtest/data")
SLOT = timedelta(minutes=30)


def write_gz(name: str, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    with (
        open(OUT / name, "wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(buf.getvalue().encode())


def prices(raw: Path) -> None:
    sys.path.insert(0, ".")
    from reconciler.backtest.prices import parse_prices

    series = parse_prices(raw / "3YP" / "sspsbpniv.csv")
    rows = [
        [t.strftime("%Y-%m-%dT%H:%MZ"), f"{p:.5g}", "" if n is None else f"{n:.4f}"]
        for t, p, n in series.rows()
    ]
    write_gz("imbalance_2016_2019.csv.gz", ["time", "price_p_per_kwh", "niv_mwh"], rows)


def year(raw: Path) -> None:
    # Load: 11 London households (LCL, 2013, UTC timestamps), mean kWh per half-hour.
    total: dict[str, float] = {}
    files = sorted(glob.glob(str(raw / "meter_readings" / "MAC*.csv")))
    for f in files:
        with open(f, newline="") as fh:
            for row in list(csv.reader(fh))[1:]:
                total[row[1].strip()] = total.get(row[1].strip(), 0.0) + float(row[2])
    lcl = {k: v / len(files) * 2.0 for k, v in total.items()}  # kW per home

    # Community microgrid January 2023 (12 homes; 4.4 kWp PV), UTC half-hours.
    def community(name: str, per: float) -> list[float]:
        with open(raw / "skypro" / name, newline="") as fh:
            return [2.0 * float(r["energy"] or 0.0) / per for r in csv.DictReader(fh)]

    jan_load = community("load12_2023_01.csv", 12.0)
    jan_solar = community("solar_2023_01.csv", 4.4)
    lcl_jan = [v for k, v in lcl.items() if k.startswith("2013-01")]
    scale = (sum(jan_load) / len(jan_load)) / (sum(lcl_jan) / len(lcl_jan))
    # Solar: PVGIS hourly W of 1 kWp at an Oxfordshire site, 2016 (UTC hours).
    pv: dict[tuple[int, int, int], float] = {}
    with open(raw / "3YP" / "oxon_solar_2016.csv", newline="") as fh:
        for row in csv.reader(fh):
            if not row or not row[0][:1].isdigit():
                if row and row[0] == "" and pv:
                    break
                continue
            d = row[0]
            pv[(int(d[4:6]), int(d[6:8]), int(d[9:11]))] = float(row[1]) / 1000.0
    rows: list[list[str]] = []
    t = datetime(2013, 1, 1, tzinfo=UTC)
    i = 0
    while t.year == 2013:
        if t.month == 1:
            load, solar = jan_load[i], jan_solar[i]
        else:
            load = lcl[t.strftime("%Y-%m-%d %H:%M:%S")] * scale
            solar = pv[(t.month, t.day, t.hour)]
        rows.append([t.strftime("%m-%dT%H:%M"), f"{load:.4f}", f"{solar:.4f}"])
        t += SLOT
        i += 1
    write_gz("year_per_home_per_kwp.csv.gz", ["utc", "load_kw_per_home", "solar_kw_per_kwp"], rows)
    print(f"LCL load scaled by {scale:.4f} so Feb-Dec match January's community level")


if __name__ == "__main__":
    raw = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    prices(raw)
    year(raw)
