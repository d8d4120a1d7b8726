#!/usr/bin/env python3
"""Parses Prometheus text on stdin with prometheus_client's own parser (an
implementation independent of the exporter's) and prints the families as JSON:
[{"name", "type", "help", "samples": [[name, {labels}, value], ...]}, ...]."""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("parse_metrics.py needs the prometheus_client package: pip install prometheus_client")

families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name,
        "type": f.type,
        "help": f.documentation,
        "samples": [[s.name, s.labels, s.value] for s in f.samples],
    })
json.dump(families, sys.stdout)
