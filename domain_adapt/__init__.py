"""Fine-tuning a generator on simulator label maps, and domain-gap metrics."""
