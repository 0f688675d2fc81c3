"""Parameter-efficient methods: one module each, registered by name in ``registry``."""
