"""The evaluation harness: labelled pairs in, per-pair JSONL, metrics, and a chart out."""
