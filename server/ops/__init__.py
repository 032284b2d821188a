"""Operator actions: each change to products, devices, people, firmware, rollouts and webhooks is one
transaction with an audit entry, then the live sessions it concerns are told. The API and the demo call these."""
