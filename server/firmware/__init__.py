"""Product firmware, the mechanism: the binary format (image.py), offline Ed25519 signing (signing.py), binaries
kept in the store and copied to each node's disk (node_cache.py, files.py; legacy.py moves the files of
older versions into the store) and the image cache in memory (cache.py). The operator actions are in ops/firmware.py."""
