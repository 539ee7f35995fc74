"""Python's standard library reading a history answer as CSV.

Run by the `history` API test with the machine's python3:

    history_csv.py URL KEY

GETs URL with `Authorization: Bearer KEY` and `Accept: text/csv` through
urllib, parses the body as it streams in with the standard `csv` module
(RFC 4180 dialect `excel`: quotes doubled, CRLF line ends) and prints one
JSON object: the answer's status, Content-Type, Content-Disposition and
Transfer-Encoding, the header row and the rows as lists of strings.
"""

import csv
import io
import json
import sys
import urllib.request

url, key = sys.argv[1], sys.argv[2]
request = urllib.request.Request(
    url, headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"}
)
with urllib.request.urlopen(request, timeout=60) as response:
    # newline="" as the csv module asks: it handles the line ends itself,
    # including those inside quoted fields.
    text = io.TextIOWrapper(response, encoding="utf-8", newline="")
    reader = csv.reader(text, dialect="excel", strict=True)
    header = next(reader)
    rows = list(reader)
    print(
        json.dumps(
            {
                "status": response.status,
                "content_type": response.headers.get("Content-Type"),
                "content_disposition": response.headers.get("Content-Disposition"),
                "transfer_encoding": response.headers.get("Transfer-Encoding"),
                "header": header,
                "rows": rows,
            }
        )
    )
