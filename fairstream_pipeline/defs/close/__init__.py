"""Period close: a paid month never changes; restatements post as adjustments to the next open month."""
