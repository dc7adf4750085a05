#!/usr/bin/env python3
"""Recovers, with DuckDB alone, the stream incarnation and the original
JetStream stream sequence of every archived row of a station, the way the
README documents it: an ASOF JOIN of the rows with the station's incarnation
records (`_strata/stations/<station>/incarnations/*.json`).

    stream_seqs.py ROOT STATION

Prints one JSON object: {"rows": [[seq, incarnation, stream_seq], ...]}
sorted by seq (incarnation and stream_seq are null for a row no incarnation
covers).
"""

import json
import os
import sys

import duckdb


def main():
    root, station = sys.argv[1], sys.argv[2]
    data = os.path.join(root, f"station={station}", "**", "*.parquet")
    incarnations = os.path.join(root, "_strata", "stations", station, "incarnations", "*.json")
    con = duckdb.connect()
    rows = con.execute(
        f"""
        WITH m AS (SELECT seq FROM read_parquet('{data}', hive_partitioning = true)),
             i AS (SELECT incarnation, seq_offset FROM read_json('{incarnations}'))
        SELECT m.seq, i.incarnation, m.seq - i.seq_offset AS stream_seq
        FROM m ASOF LEFT JOIN i ON m.seq > i.seq_offset
        ORDER BY m.seq
        """
    ).fetchall()
    print(json.dumps({"rows": [[int(s), inc, st] for (s, inc, st) in rows]}))


if __name__ == "__main__":
    main()
