"""Seeding PrestaShop databases: the demo shop, and large generated shops for benchmarks, on the real DDL."""
