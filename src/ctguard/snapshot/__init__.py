"""``ctguard snapshot``: capture what ctguard reads, to audit the host elsewhere."""
