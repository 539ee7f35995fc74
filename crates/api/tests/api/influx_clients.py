"""InfluxDB's official Python clients, unmodified, writing to Stoker.

Run by the `influx_write` API test through scripts/influx-clients (which
installs the pinned clients into a venv under .dev/):

    influx_clients.py URL KEY SITE BASE_MS

Writes, each at its own time (BASE_MS + k seconds), readings of the site's
sensors b1_steam_pressure and b1_flue_temp, and of its boolean sensor
b1_burner_on as a Modbus coil (an integer field), and prints one JSON
object saying what each write answered. The test checks the answers, then that
InfluxDB and `latest` hold exactly the readings stored.
"""

import json
import sys
from urllib.parse import urlparse

import influxdb
import requests
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

url, key, site, base_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
parsed = urlparse(url)
results = {}


def at(k):
    """BASE_MS + k seconds, in nanoseconds."""
    return (base_ms + k * 1000) * 1_000_000


def modbus(k):
    """Telegraf's modbus shape, fields named as the site's sensors."""
    return (
        Point("modbus")
        .tag("name", "b1")
        .tag("slave_id", "1")
        .field("b1_steam_pressure", 10.0 + k)
        .field("b1_flue_temp", 180.0 + k)
        .time(at(k), WritePrecision.NS)
    )


# 2.x client (/api/v2/write, Authorization: Token), plain and gzip.
for k, gzip in [(0, False), (1, True)]:
    with InfluxDBClient(url=url, token=key, org="stoker", enable_gzip=gzip) as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=site, record=modbus(k))
        results[f"v2_gzip={gzip}"] = "stored"

# 2.x client: one bad line among good ones.
with InfluxDBClient(url=url, token=key, org="stoker") as client:
    try:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=site,
            write_precision=WritePrecision.MS,
            record=[
                f"modbus b1_steam_pressure=12.0 {base_ms + 2000}",
                "modbus this line is broken",
                f"modbus b1_flue_temp=182.0 {base_ms + 2000}",
            ],
        )
        results["v2_bad_line"] = "stored"
    except ApiException as error:
        results["v2_bad_line"] = {"status": error.status, "body": json.loads(error.body)}

# 2.x client: a key that is not one.
with InfluxDBClient(url=url, token="stk_nope_nope", org="stoker") as client:
    try:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=site, record=modbus(9))
        results["v2_bad_key"] = "stored"
    except ApiException as error:
        results["v2_bad_key"] = {"status": error.status, "body": json.loads(error.body)}

# 1.x client (/write, user and password: HTTP Basic), plain and gzip.
for k, gzip in [(3, False), (4, True)]:
    client = influxdb.InfluxDBClient(
        host=parsed.hostname,
        port=parsed.port,
        username="telegraf",
        password=key,
        database=site,
        gzip=gzip,
    )
    client.write_points(
        [
            {
                "measurement": "modbus",
                "tags": {"name": "b1", "slave_id": "1"},
                "time": base_ms + k * 1000,
                "fields": {"b1_steam_pressure": 10.0 + k, "b1_flue_temp": 180.0 + k},
            }
        ],
        time_precision="ms",
    )
    results[f"v1_gzip={gzip}"] = "stored"

# 1.x's u and p parameters, as older clients and curl send them.
response = requests.post(
    f"{url}/write",
    params={"db": site, "u": "telegraf", "p": key, "precision": "s"},
    data=f"modbus b1_steam_pressure=15.0 {base_ms // 1000 + 5}",
)
results["v1_u_p"] = {"status": response.status_code, "body": response.text}

# 1.x client: one bad line among good ones.
client = influxdb.InfluxDBClient(
    host=parsed.hostname, port=parsed.port, username="telegraf", password=key, database=site
)
try:
    client.write_points(
        [f"modbus b1_flue_temp=186.0 {base_ms + 6000}", "modbus b1_flue_temp=hot"],
        time_precision="ms",
        protocol="line",
    )
    results["v1_bad_line"] = "stored"
except influxdb.exceptions.InfluxDBClientError as error:
    results["v1_bad_line"] = {"status": error.code, "body": json.loads(error.content)}

# 2.x client: a Modbus coil as an integer field (the client writes a
# Python int as 1i) for the boolean sensor b1_burner_on; then a 3, which
# is no coil.
with InfluxDBClient(url=url, token=key, org="stoker") as client:
    write_api = client.write_api(write_options=SYNCHRONOUS)
    write_api.write(
        bucket=site,
        record=Point("modbus").tag("name", "b1").field("b1_burner_on", 1).time(at(7), WritePrecision.NS),
    )
    results["v2_coil"] = "stored"
    try:
        write_api.write(
            bucket=site,
            record=Point("modbus").tag("name", "b1").field("b1_burner_on", 3).time(at(8), WritePrecision.NS),
        )
        results["v2_coil_3"] = "stored"
    except ApiException as error:
        results["v2_coil_3"] = {"status": error.status, "body": json.loads(error.body)}

print(json.dumps(results))
