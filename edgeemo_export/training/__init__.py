"""Build-time training recipe (tf_keras): data loading and caching, augmentation that matches deployment crops,
a resumable training loop, and the architectures it can train. Generic over the architecture, so a later
quantization-aware or "better default" model reuses the same loop."""
