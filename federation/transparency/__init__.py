"""The audit log: events written with every state change, sequenced into an RFC 6962 Merkle tree."""
