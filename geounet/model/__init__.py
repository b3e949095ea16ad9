"""Networks, checkpoints (safetensors with the card), test-time augmentation, devices."""
