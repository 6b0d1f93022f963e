"""Payouts: what SeQura paid the merchant, read from its Disbursement API and kept in the state store."""
