"""Any MQTT device without code: mapping profiles (topics, JSON paths, expressions), engine."""
