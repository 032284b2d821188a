"""Product firmware: the binary format (image.py), offline Ed25519 signing (signing.py), where
binaries live on disk (files.py) and the operator actions on firmware and groups (operations.py)."""
