"""Data access: one store module per domain. Every function here takes the tenant id explicitly,
and every tenant item's partition key is that tenant id."""
