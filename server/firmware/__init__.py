"""Product firmware, the mechanism: the binary format (image.py), offline Ed25519 signing (signing.py), where
binaries live on disk (files.py) and the image cache (cache.py). The operator actions are in ops/firmware.py."""
