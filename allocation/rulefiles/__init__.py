"""Rule files: located YAML, the condition language, loading and binding rulebooks, rule selection, the durable_rules engine (the only importer of durable_rules) and the readable rule book."""
