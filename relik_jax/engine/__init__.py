"""Running jitted models fast: static shape buckets, compiled-forward cache, FLOP floors."""
